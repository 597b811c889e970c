"""`segstream segment` and `segstream check`: bulk re-segmentation of files from the shell.

Exit codes: 0 done; 2 a usage or rule error; 3 too many rejected rows (every row, by
default, or more than `--max-rejected-share`; the outputs are written all the same, and
the top reasons go to stderr); 1 any other failure (a missing or unreadable file is
named in the message).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from segstream.bulk import OUTPUT_FORMATS, TS_UNITS, BulkProgress, BulkResult, resegment
from segstream.bulk import to_utc as _to_utc
from segstream.file_inputs import FORMATS, ID_TYPES, check_column_map

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3


def register(subparsers: Any) -> None:
    """Add the `segment` and `check` commands to the `segstream` parser."""
    segment = subparsers.add_parser(
        "segment",
        help="re-segment event files (Parquet, Arrow, CSV, JSON lines) as of a date",
        description=(
            "Run event files through the rules and write every customer's memberships "
            "(memberships.*), aggregates (profiles.*), refused rows (rejected.*) and "
            "summary.json into the output directory."
        ),
    )
    segment.add_argument("rules", metavar="RULES", help="rule set (YAML file)")
    segment.add_argument(
        "inputs", metavar="INPUT", nargs="+", help="event files, directories or glob patterns"
    )
    segment.add_argument(
        "--as-of",
        metavar="DATE",
        help="skip events after this time and hold memberships at it "
        "(YYYY-MM-DD = midnight UTC, or an ISO time); default: the latest event",
    )
    segment.add_argument("--out", metavar="DIR", default="out", help="output directory (out)")
    segment.add_argument(
        "--map",
        metavar="ENGINE=YOURS,...",
        type=_column_map,
        help="rename input columns, e.g. customer_id=cust_no,ts=order_date",
    )
    segment.add_argument(
        "--line-items",
        action="store_true",
        help="rows are order lines: group them into one event per customer and order "
        "(the lines of one order must be adjacent)",
    )
    segment.add_argument(
        "--dedupe",
        action="store_true",
        help="apply each event_id once per customer, as the streaming engine does; off by "
        "default because the ids seen take memory in proportion to the input's rows",
    )
    segment.add_argument(
        "--format", choices=sorted(OUTPUT_FORMATS), default="parquet", help="output format"
    )
    segment.add_argument(
        "--input-format",
        choices=FORMATS,
        help="format of inputs whose name does not tell (default: from the file ending)",
    )
    segment.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="engines ingesting side by side, each owning a share of the customers "
        "(default: the CPU count, at most 8)",
    )
    segment.add_argument(
        "--id-type",
        choices=ID_TYPES,
        default="text",
        help="how CSV and JSON files type customer_id, order_id and event_id (default "
        "text: 00123 and 123 stay two customers)",
    )
    segment.add_argument(
        "--ts-unit",
        choices=TS_UNITS,
        default="ms",
        help="unit of epoch numbers in ts: ms (default) or s (Unix seconds)",
    )
    segment.add_argument(
        "--tz",
        metavar="ZONE",
        help="IANA zone of ts text without an offset, e.g. Europe/Berlin (default UTC)",
    )
    segment.add_argument(
        "--max-rejected-share",
        metavar="F",
        type=_share_arg,
        default=None,
        help="exit 3 when more than this share (0..1) of the rows is rejected "
        "(default: only when every row is)",
    )
    segment.add_argument("--batch-size", type=_positive, default=None, help=argparse.SUPPRESS)
    segment.set_defaults(func=run_segment)

    check = subparsers.add_parser(
        "check",
        help="compile a rule set and show what each segment needs",
        description="Compile the rules; print each segment and the state it needs, or the error.",
    )
    check.add_argument("rules", metavar="RULES", help="rule set (YAML file)")
    check.set_defaults(func=run_check)


def _share_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _column_map(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        engine_name, sep, source = item.partition("=")
        if not sep or not engine_name.strip() or not source.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not ENGINE_NAME=YOUR_NAME")
        pairs[engine_name.strip()] = source.strip()
    try:
        check_column_map(pairs)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return pairs


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def run_segment(args: argparse.Namespace) -> int:
    """The `segment` command; returns the exit code."""
    from segstream.errors import RuleError
    from segstream.rules import RuleSet

    err = Console(stderr=True)
    try:
        as_of = _to_utc(args.as_of, args.tz) if args.as_of is not None else None
    except ValueError as exc:
        _fail(f"--as-of: {exc}")
        return EXIT_USAGE
    try:
        rules = RuleSet.from_file(args.rules)
        with _progress_bar(err) as on_progress:
            result = resegment(
                rules,
                args.inputs,
                as_of=as_of,
                columns=args.map,
                batch_size=args.batch_size,
                line_items=args.line_items,
                dedupe=args.dedupe,
                threads=args.threads,
                input_format=args.input_format,
                progress=on_progress,
                id_type=args.id_type,
                ts_unit=args.ts_unit,
                tz=args.tz,
            )
        written = result.write(args.out, args.format)
    except RuleError as exc:
        _fail(f"{args.rules}: {exc}")
        return EXIT_USAGE
    except FileNotFoundError as exc:
        _fail(f"{exc.filename}: {exc.strerror or exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as exc:  # every other failure is reported, not a traceback
        _fail(_describe_error(exc))
        return EXIT_FAILURE
    _report(result, written)
    for line in result.warnings:
        print(f"segstream: warning: {line}", file=sys.stderr)
    return _judge_rejected(result, args.max_rejected_share, written)


def _judge_rejected(result: BulkResult, max_share: float | None, written: dict[str, Any]) -> int:
    """EXIT_REJECTED, with the top reasons on stderr, when the run rejected every row (or
    more than `max_share` of them); EXIT_OK otherwise."""
    considered = result.rows_read - result.rows_skipped
    every = considered > 0 and result.rows_applied <= 0 and result.rows_rejected > 0
    over = max_share is not None and result.rejected_share > max_share
    if not (every or over):
        return EXIT_OK
    if every:
        head = f"every row was rejected ({result.rows_rejected:,} of {considered:,})"
    else:
        head = (
            f"{result.rows_rejected:,} of {considered:,} rows rejected "
            f"({result.rejected_share:.1%}), more than --max-rejected-share {max_share:g}"
        )
    lines = [head, "top reasons:"]
    lines += [f"  {rows:>10,}  {reason}" for reason, rows in result.top_reasons()]
    lines.append(f"every rejected row, with its file, row and reason: {written['rejected']}")
    _fail("\n".join(lines))
    return EXIT_REJECTED


def run_check(args: argparse.Namespace) -> int:
    """The `check` command; returns the exit code."""
    from segstream.errors import RuleError
    from segstream.rules import RuleSet

    try:
        described = RuleSet.from_file(args.rules).describe()
    except RuleError as exc:
        _fail(f"{args.rules}: {exc}")
        return EXIT_USAGE
    except FileNotFoundError as exc:
        _fail(f"{exc.filename or args.rules}: {exc.strerror or exc}")
        return EXIT_FAILURE
    except Exception as exc:
        _fail(_describe_error(exc))
        return EXIT_FAILURE
    print(described if isinstance(described, str) else _format_description(described))
    return EXIT_OK


def _format_description(described: Any) -> str:
    """The engine's description of a compiled rule set (`RuleSet.describe()`) as text."""
    if not isinstance(described, dict) or "nodes" not in described:
        return json.dumps(described, indent=2, default=str)
    lines = []
    for node in described["nodes"]:
        kind = node.get("kind", "segment")
        lines.append(f"{node['name']} ({kind})")
        if node.get("rule"):
            lines.append(f"  rule: {' '.join(str(node['rule']).split())}")
        if node.get("stages"):
            lines.append(f"  stages: {', '.join(node['stages'])}")
        if node.get("depends_on"):
            lines.append(f"  depends on: {', '.join(node['depends_on'])}")
        extras = []
        if node.get("time_dependent"):
            extras.append("changes with time alone")
        if node.get("holdout"):
            extras.append(f"holdout {node['holdout']}%")
        if node.get("cooldown_ms"):
            extras.append(f"cooldown {node['cooldown_ms'] / 86_400_000:g} days")
        if extras:
            lines.append(f"  {'; '.join(extras)}")
    kept = described.get("state_kept") or []
    lines.append("state kept per customer, besides the base aggregates:")
    lines.extend(f"  - {item}" for item in kept or ["(nothing more)"])
    if described.get("longest_lookback_days"):
        lines.append(f"longest lookback: {described['longest_lookback_days']:g} days")
    if described.get("traits"):
        traits = ", ".join(f"{t['name']} ({t['type']})" for t in described["traits"])
        lines.append(f"traits: {traits}")
    return "\n".join(lines)


def _fail(message: str) -> None:
    print(f"segstream: error: {message}", file=sys.stderr)


def _describe_error(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    text = str(exc) or type(exc).__name__
    return "\n".join([text, *notes]) if notes else text


@contextmanager
def _progress_bar(console: Console) -> Iterator[Callable[[BulkProgress], None] | None]:
    """A rich progress bar on stderr, only when stderr is a terminal (not in logs or pipes)."""
    if not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TextColumn("{task.fields[rate]:>10,.0f} rows/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task: TaskID | None = None
        started = time.perf_counter()

        def update(p: BulkProgress) -> None:
            nonlocal task
            rate = p.rows_read / max(time.perf_counter() - started, 1e-9)
            if task is None:
                task = bar.add_task("segment", total=p.bytes_total, rows=0, rate=0.0)
            bar.update(task, completed=p.bytes_read, rows=p.rows_read, rate=rate)

        yield update


def _report(result: BulkResult, written: dict[str, Any]) -> None:
    """Segment sizes and shares, then the row counts and time, on stdout."""
    out = Console(highlight=False)
    customers = result.customers
    # The heading goes above the table, not in it: rich would wrap it to the table's width.
    out.print(f"{customers:,} customers, as of {_when(result)} UTC", soft_wrap=True)
    table = Table()
    table.add_column("segment")
    table.add_column("members", justify="right")
    table.add_column("share", justify="right")
    for name, size in result.sizes.items():
        if isinstance(size, dict):
            for stage, count in size.items():
                table.add_row(f"{name}: {stage}", f"{count:,}", _share(count, customers))
        else:
            table.add_row(name, f"{size:,}", _share(size, customers))
    out.print(table)
    if result.event_types:
        kinds = Table()
        kinds.add_column("event_type")
        kinds.add_column("rows", justify="right")
        kinds.add_column("read as")
        for c in result.event_types:
            shown = "(none: purchase)" if c.event_type is None else c.event_type
            kinds.add_row(shown, f"{c.rows:,}", _READ_AS_SHOWN.get(c.read_as, c.read_as))
        out.print(kinds)
    rate = result.rows_read / result.elapsed if result.elapsed > 0 else 0.0
    duplicates = f", duplicate {result.rows_duplicate:,}" if result.rows_duplicate else ""
    # soft_wrap: in a pipe rich assumes 80 columns; these lines are for grep, not for layout.
    out.print(
        f"rows read {result.rows_read:,}, applied {result.rows_applied:,}, "
        f"skipped (after as-of) {result.rows_skipped:,}, "
        f"rejected {result.rows_rejected:,}{duplicates}; {result.events:,} events in "
        f"{result.elapsed:.2f} s ({rate:,.0f} rows/s)",
        soft_wrap=True,
    )
    out.print(f"wrote {', '.join(str(p) for p in written.values())}", soft_wrap=True)
    if result.rows_rejected:
        out.print(
            f"see {written['rejected']} for the rejected rows and their reasons", soft_wrap=True
        )


_READ_AS_SHOWN = {
    "signal": "signal (used by a rule)",
    "ignored": "signal (no rule reads it)",
    "rejected": "rejected (empty)",
}


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _when(result: BulkResult) -> str:
    if result.as_of is None:
        return "-"
    return result.as_of.strftime("%Y-%m-%d %H:%M:%S" if result.as_of.second else "%Y-%m-%d %H:%M")
