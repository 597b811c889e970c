"""`python -m segstream`: the same command as the `segstream` script."""

import sys

from segstream.cli import main

sys.exit(main())
