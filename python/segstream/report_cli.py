"""`segstream report`: one self-contained HTML report over a period (docs/report.md).

Exit codes as for `segstream measure`: 0 done; 2 a usage or rule error; 1 any other failure.
"""

from __future__ import annotations

import argparse
from typing import Any

from segstream.bulk_cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    _column_map,
    _describe_error,
    _fail,
)
from segstream.file_inputs import FORMATS


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
    p.add_argument("rules", metavar="RULES", help="rule set (YAML file)")
    p.add_argument(
        "inputs", metavar="INPUT", nargs="+", help="event files, directories or glob patterns"
    )
    p.add_argument(
        "--from", dest="start", metavar="DATE", required=True, help="first day (YYYY-MM-DD, UTC)"
    )
    p.add_argument(
        "--to", dest="end", metavar="DATE", required=True, help="day after the last (exclusive)"
    )
    p.add_argument("--out", metavar="FILE", default="report.html", help="output (report.html)")
    p.add_argument(
        "--map",
        metavar="ENGINE=YOURS,...",
        type=_column_map,
        help="rename input columns, e.g. customer_id=cust_no,ts=order_date",
    )
    p.add_argument("--input-format", choices=FORMATS, help="format of inputs (default: by name)")
    p.add_argument(
        "--step",
        metavar="DURATION",
        default="1 hour",
        help="event time per evaluated batch (1 hour), as for `segstream measure`",
    )
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """The `report` command; returns the exit code."""
    from segstream.errors import InvalidInputError, RuleError
    from segstream.measure_cli import _duration_ms
    from segstream.report import report_files, write_report
    from segstream.rules import RuleSet

    try:
        rules = RuleSet.from_file(args.rules)
        text, result = report_files(
            rules,
            args.inputs,
            args.start,
            args.end,
            columns=args.map,
            input_format=args.input_format,
            step_ms=_duration_ms(args.step),
        )
        write_report(args.out, text)
    except RuleError as exc:
        _fail(f"{args.rules}: {exc}")
        return EXIT_USAGE
    except (InvalidInputError, ValueError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except FileNotFoundError as exc:
        _fail(f"{exc.filename}: {exc.strerror or exc}")
        return EXIT_FAILURE
    except Exception as exc:  # every other failure is reported, not a traceback
        _fail(_describe_error(exc))
        return EXIT_FAILURE
    print(f"replayed {result.rows:,} events of {result.customers:,} customers; wrote {args.out}")
    return EXIT_OK
