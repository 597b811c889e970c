"""The `segstream` command: dispatches to the bulk, service and demo front ends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    import segstream
    from segstream import bulk_cli, demo, measure_cli, report_cli
    from segstream.service import cli as service_cli

    parser = argparse.ArgumentParser(
        prog="segstream",
        description="Streaming customer segmentation over Arrow, files and Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"segstream {segstream.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.register(sub)
    bulk_cli.register(sub)
    measure_cli.register(sub)
    report_cli.register(sub)
    service_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
