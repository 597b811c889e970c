"""`segstream report`: one self-contained HTML report over a period (docs/report.md).

Exit codes as for `segstream measure`: 0 done; 2 a usage or rule error; 1 any other failure.
"""

from __future__ import annotations

import argparse
from typing import Any

from segstream.bulk_cli import EXIT_OK
from segstream.measure_cli import _duration_ms, add_replay_arguments, run_replay


def register(subparsers: Any) -> None:
    """Add the `report` command to the `segstream` parser."""
    p = subparsers.add_parser(
        "report",
        help="one HTML page of segment sizes, lifecycle flows and uplift over a period",
        description=(
            "Replay event files as `segstream measure` does and write a single HTML file "
            "(scripts and data inline, it opens with no network) that shows the results."
        ),
    )
    add_replay_arguments(
        p,
        out_metavar="FILE",
        out_default="report.html",
        out_help="output (report.html)",
        step_help="event time per evaluated batch (1 hour), as for `segstream measure`",
    )
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """The `report` command; returns the exit code."""
    from segstream.report import report_files, write_report
    from segstream.rules import RuleSet

    def work() -> int:
        text, result = report_files(
            RuleSet.from_file(args.rules),
            args.inputs,
            args.start,
            args.end,
            columns=args.map,
            input_format=args.input_format,
            step_ms=_duration_ms(args.step),
        )
        write_report(args.out, text)
        print(
            f"replayed {result.rows:,} events of {result.customers:,} customers; wrote {args.out}"
        )
        return EXIT_OK

    return run_replay(args, work)
