"""`segstream measure`: uplift and lifecycle reports over event files (docs/measure.md).

Exit codes as for `segstream segment`: 0 done; 2 a usage or rule error; 1 any other failure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

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
    """Add the `measure` command to the `segstream` parser."""
    p = subparsers.add_parser(
        "measure",
        help="uplift against holdouts and lifecycle reports over event files",
        description=(
            "Replay event files in event-time order through the rules, evaluating every "
            "batch, and write uplift.parquet, lifecycles.parquet and changes.parquet (every "
            "change of the replay) into the output directory; print both reports."
        ),
    )
    add_replay_arguments(
        p,
        out_metavar="DIR",
        out_default="out",
        out_help="output directory (out)",
        step_help="event time per evaluated batch (1 hour): entries are stamped at most this late",
    )
    p.set_defaults(func=run_measure)


def add_replay_arguments(
    p: argparse.ArgumentParser, *, out_metavar: str, out_default: str, out_help: str, step_help: str
) -> None:
    """The arguments of a command that replays event files over a period (`measure`, `report`)."""
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
    p.add_argument("--out", metavar=out_metavar, default=out_default, help=out_help)
    p.add_argument(
        "--map",
        metavar="ENGINE=YOURS,...",
        type=_column_map,
        help="rename input columns, e.g. customer_id=cust_no,ts=order_date",
    )
    p.add_argument("--input-format", choices=FORMATS, help="format of inputs (default: by name)")
    p.add_argument("--step", metavar="DURATION", default="1 hour", help=step_help)


def run_replay(args: argparse.Namespace, work: Callable[[], int]) -> int:
    """Runs `work` and turns its failures into a message and an exit code: a rule, usage or
    input error is 2, a missing file or any other failure 1."""
    from segstream.errors import InvalidInputError, RuleError

    try:
        return work()
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


def run_measure(args: argparse.Namespace) -> int:
    """The `measure` command; returns the exit code."""
    from segstream.measure import measure_files
    from segstream.rules import RuleSet

    def work() -> int:
        result = measure_files(
            RuleSet.from_file(args.rules),
            args.inputs,
            args.start,
            args.end,
            columns=args.map,
            input_format=args.input_format,
            step_ms=_duration_ms(args.step),
        )
        written = result.write(args.out)
        out = Console()
        out.print(
            f"replayed {result.rows:,} events ({result.rejected:,} rejected), "
            f"{result.changes.num_rows:,} changes; clock {result.clock}"
        )
        print_table(out, "uplift", result.uplift)
        print_table(out, "lifecycles", result.lifecycles)
        for path in written:
            out.print(f"wrote {path}")
        return EXIT_OK

    return run_replay(args, work)


def _duration_ms(text: str) -> int:
    number, _, unit = text.strip().partition(" ")
    per = {"ms": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
    unit = unit.strip().rstrip("s") if unit.strip() != "ms" else "ms"
    if unit not in per or not number.isdigit() or int(number) <= 0:
        raise ValueError(
            f"--step {text!r}: write a positive duration such as `1 hour` or `15 minutes`"
        )
    return int(number) * per[unit]


def print_table(console: Console, title: str, table: pa.Table) -> None:
    """A report as a terminal table (floats to 4 digits, NULL shown as an empty cell)."""
    view = Table(title=title, title_justify="left")
    for name in table.column_names:
        view.add_column(name, overflow="fold")
    for row in table.to_pylist():
        view.add_row(*(_cell(v) for v in row.values()))
    if table.num_rows == 0:
        console.print(
            f"{title}: nothing to report (no segment with a conversion spec / no lifecycle)"
        )
        return
    console.print(view)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)
