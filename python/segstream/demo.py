"""`segstream demo`: stream a generated purchase history through a rule set and show the result.

The demo is the quickest way to see the engine work end to end: it generates a seeded
purchase stream (`segstream.generate`), feeds it batch by batch to `Engine.ingest` as a
stream processor would, upserts contact traits, then moves the clock 120 days past the
last event so that segments that depend on time alone (dormant, upsell, …) fire, and
prints segment sizes, throughput and a sample of the membership changes.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from rich.console import Console

#: How far the clock moves past the last event, so 90-day rules have time to fire.
ADVANCE_DAYS = 120
#: Membership changes shown at the end.
SAMPLE_SIZE = 10


def register(subparsers: Any) -> None:
    """Add the `demo` subcommand to the `segstream` parser."""
    parser = subparsers.add_parser(
        "demo",
        help="stream a generated purchase history through a rule set",
        description=(
            "Generate a seeded purchase stream, ingest it batch by batch, advance the clock "
            f"{ADVANCE_DAYS} days past the last event and print segment sizes, throughput "
            "and sample membership changes."
        ),
    )
    parser.add_argument("--customers", type=int, default=20_000, help="customers (20000)")
    parser.add_argument("--events", type=int, default=400_000, help="events (400000)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (7)")
    parser.add_argument(
        "--rules",
        type=Path,
        default=None,
        metavar="PATH",
        help="rule set YAML (default: the embedded retail rules, examples/rules/retail.yaml)",
    )
    parser.set_defaults(func=run)


def default_rules() -> str:
    """The embedded default rule set, as YAML text."""
    return resources.files("segstream").joinpath("default_rules.yaml").read_text("utf-8")


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 when the rules do not load."""
    from rich.console import Console

    import segstream
    from segstream.generate import purchase_events, traits_table

    console = Console()
    try:
        rules = args.rules.read_text("utf-8") if args.rules is not None else default_rules()
        engine = segstream.Engine(rules)
    except (OSError, segstream.SegstreamError) as exc:
        console.print(f"[red]cannot load the rules[/red] {args.rules or 'default'}: {exc}")
        return 1
    console.print(
        f"Streaming {args.events:,} events of {args.customers:,} customers "
        f"(seed {args.seed}) through {args.rules or 'the default retail rules'} …"
    )

    changes: list[pa.Table] = []
    ingest_seconds = 0.0
    events = 0
    last_ts: datetime | None = None
    started = time.perf_counter()
    for batch in purchase_events(args.customers, args.events, seed=args.seed):
        t0 = time.perf_counter()
        result = engine.ingest(batch)
        ingest_seconds += time.perf_counter() - t0
        events += batch.num_rows
        changes.append(result.changes)
        if batch.num_rows:
            last_ts = batch.column("ts")[-1].as_py()
        if result.rejected.num_rows:
            console.print(f"[yellow]{result.rejected.num_rows} rows rejected[/yellow]")
    wall = time.perf_counter() - started

    # Traits arrive separately from events, as contact-profile upserts.
    changes.append(engine.update_traits(traits_table(args.customers, seed=args.seed)))
    # Uplift over the stream itself: entries made later, while the clock advances with no
    # events, could not convert and would only dilute the groups.
    uplift = _uplift_so_far(engine, changes)
    if last_ts is not None:
        t0 = time.perf_counter()
        changes.append(engine.advance_to(last_ts + timedelta(days=ADVANCE_DAYS)))
        advance_seconds = time.perf_counter() - t0
    else:
        advance_seconds = 0.0

    nonempty = [c for c in changes if c.num_rows]
    all_changes = pa.concat_tables(nonempty) if nonempty else None
    _print_sizes(console, engine.stats(), args.customers, all_changes)
    console.print(
        f"ingest: {events:,} events in {ingest_seconds:.2f} s of engine time "
        f"= [bold]{events / max(ingest_seconds, 1e-9):,.0f} events/s[/bold] "
        f"({wall:.2f} s with generation); clock advanced {ADVANCE_DAYS} days "
        f"to {engine.clock:%Y-%m-%d} in {advance_seconds * 1000:.0f} ms"
    )
    if all_changes is not None:
        _print_causes(console, all_changes)
        _print_sample(console, all_changes)
        _print_measurement(console, engine, all_changes, uplift)
    return 0


#: The uplift columns the demo shows (the table has more: docs/measure.md).
UPLIFT_SHOWN = [
    "segment",
    "treatment_entries",
    "holdout_entries",
    "treatment_rate",
    "holdout_rate",
    "lift",
    "p_value",
    "incremental_revenue",
    "immature_entries",
]


def _uplift_so_far(engine: Any, changes: list[pa.Table]) -> pa.Table | None:
    """The uplift table over the days from the first change to the engine clock."""
    firsts = [pc.min(c.column("at")).as_py() for c in changes if c.num_rows]
    clock = engine.clock
    if not firsts or clock is None:
        return None
    first = min(firsts)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(clock.year, clock.month, clock.day, tzinfo=UTC) + timedelta(days=1)
    table: pa.Table = engine.uplift(start, end)
    return table.select(UPLIFT_SHOWN)


def _print_measurement(
    console: Console, engine: Any, changes: pa.Table, uplift: pa.Table | None
) -> None:
    """Uplift against the holdouts and the lifecycle report over the whole run."""
    from segstream.measure import lifecycle_report_from_changes
    from segstream.measure_cli import print_table

    if uplift is not None:
        print_table(console, "Uplift against holdouts over the stream (docs/measure.md)", uplift)
    first = pc.min(changes.column("at")).as_py()
    if first is None or engine.clock_ms is None:
        return
    report = lifecycle_report_from_changes(changes, engine.rules, first, engine.clock_ms + 1)
    print_table(console, "Lifecycles over the run", report)


def _print_sizes(
    console: Console, stats: dict[str, Any], customers: int, changes: pa.Table | None
) -> None:
    from rich.table import Table

    # Short-lived segments (recent buyers, browsers) are mostly empty once the clock has
    # moved on, so how many ever entered says more about them than the final size.
    entered: Counter[tuple[str, str | None]] = Counter()
    if changes is not None:
        for segment, change, to_stage in zip(
            changes.column("segment").to_pylist(),
            changes.column("change").to_pylist(),
            changes.column("to_stage").to_pylist(),
            strict=True,
        ):
            if to_stage is not None:
                entered[(segment, to_stage)] += 1
            elif change == "enter":
                entered[(segment, None)] += 1

    table = Table(title=f"Segment sizes at the end ({customers:,} customers)")
    table.add_column("segment")
    table.add_column("members", justify="right")
    table.add_column("share", justify="right")
    table.add_column("entries", justify="right")
    for name, value in stats.items():
        # A lifecycle reports a count per stage; a segment a single count.
        rows = value.items() if isinstance(value, dict) else [(None, value)]
        for stage, count in rows:
            label = name if stage is None else f"{name}: {stage}"
            share = f"{count / customers:.1%}"
            table.add_row(label, f"{count:,}", share, f"{entered[(name, stage)]:,}")
    console.print(table)


def _print_causes(console: Console, changes: pa.Table) -> None:
    from rich.table import Table

    counts = Counter(
        zip(
            changes.column("cause").to_pylist(),
            changes.column("change").to_pylist(),
            strict=True,
        )
    )
    table = Table(title=f"{changes.num_rows:,} membership changes by cause")
    table.add_column("cause")
    table.add_column("change")
    table.add_column("count", justify="right")
    for (cause, change), count in sorted(counts.items()):
        table.add_row(cause, change, f"{count:,}")
    console.print(table)


def _print_sample(console: Console, changes: pa.Table) -> None:
    from rich.table import Table

    entries = changes.filter(pc.is_in(changes.column("change"), pa.array(["enter", "exit"])))
    if entries.num_rows == 0:
        return
    # Evenly spaced rows: a deterministic sample that spans the whole run.
    step = max(1, entries.num_rows // SAMPLE_SIZE)
    sample = entries.take(pa.array(range(0, entries.num_rows, step))[:SAMPLE_SIZE])
    table = Table(title="Sample of enter/exit events")
    for name in ("customer_id", "segment", "change", "at", "cause", "holdout"):
        table.add_column(name, no_wrap=name in ("customer_id", "at"))
    for row in sample.to_pylist():
        table.add_row(
            str(row["customer_id"]),
            row["segment"],
            row["change"],
            f"{row['at']:%Y-%m-%d %H:%M}",
            row["cause"],
            "yes" if row["holdout"] else "",
        )
    console.print(table)
