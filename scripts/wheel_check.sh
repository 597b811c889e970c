#!/usr/bin/env bash
# Builds the release wheel, installs it into a fresh virtual environment (no
# dev dependencies, no source tree on the path) and runs what a new user runs
# first: `segstream --version`, `python -m segstream`, the demo and the
# README's quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$root/.venv/bin/maturin" build --release -q --out "$work/dist"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work"/dist/*.whl
# The README's first Python block is the quickstart.
"$root/.venv/bin/python" - "$root/README.md" > "$work/quickstart.py" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
print(re.search(r"```python\n(.*?)```", text, re.S).group(1))
PY

cd "$work"
bin="$work/venv/bin"
"$bin/segstream" --version
"$bin/python" -m segstream --version
"$bin/segstream" demo --customers 2000 --events 20000 > demo.out
grep -q . demo.out
"$bin/python" quickstart.py > quickstart.out
grep -q "vip" quickstart.out
echo "wheel check passed: $(ls "$work"/dist)"
