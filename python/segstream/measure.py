"""Measurement over history: replay event files through the rules in event-time order,
every batch evaluated, and report uplift and lifecycles (docs/measure.md).

`measure_files` is what `segstream measure` runs; `lifecycle_report_from_changes` counts a
lifecycle's changes over a period from a changes table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from segstream.bulk import _normalize, _TimeFormat, to_utc
from segstream.engine import Engine, to_epoch_ms
from segstream.errors import InvalidInputError
from segstream.file_inputs import read_batches, resolve
from segstream.rules import RuleSet

#: At most this many rows per evaluated batch.
BATCH_ROWS = 50_000
#: At most this much event time per evaluated batch, ms. A batch is evaluated at its latest
#: event, so this bounds how late an entry is stamped, and events of the same batch after
#: the one that made the entry are not attributed to it: keep it well below the windows.
STEP_MS = 3_600_000

LIFECYCLE_SCHEMA = pa.schema(
    [
        pa.field("lifecycle", pa.string(), nullable=False),
        pa.field("stage", pa.string()),
        pa.field("members_at_end", pa.int64(), nullable=False),
        pa.field("entries", pa.int64(), nullable=False),
        pa.field("progressions_in", pa.int64(), nullable=False),
        pa.field("progressions_out", pa.int64(), nullable=False),
        pa.field("regressions_in", pa.int64(), nullable=False),
        pa.field("regressions_out", pa.int64(), nullable=False),
        pa.field("dropouts", pa.int64(), nullable=False),
        pa.field("completions", pa.int64(), nullable=False),
        pa.field("completion_rate", pa.float64()),
    ]
)


@dataclass
class MeasureResult:
    """What a measurement run produced."""

    uplift: pa.Table
    lifecycles: pa.Table
    changes: pa.Table
    rows: int
    rejected: int
    clock: datetime | None
    #: distinct customers among the replayed events
    customers: int = 0

    def write(self, out: str | os.PathLike[str]) -> list[str]:
        """Writes uplift.parquet, lifecycles.parquet and changes.parquet into `out`."""
        os.makedirs(out, exist_ok=True)
        written = []
        for name, table in (
            ("uplift", self.uplift),
            ("lifecycles", self.lifecycles),
            ("changes", self.changes),
        ):
            path = os.path.join(out, f"{name}.parquet")
            pq.write_table(table, path)
            written.append(path)
        return written


def midnight(value: datetime | date | str) -> datetime:
    """A UTC midnight from a date, ISO text or datetime; anything else is an error."""
    when = to_utc(value)
    assert when is not None
    if when != datetime(when.year, when.month, when.day, tzinfo=UTC):
        raise InvalidInputError(
            f"{value}: periods start and end at midnight UTC (the uplift counters are kept per "
            "day of entry); give a date such as 2024-03-01"
        )
    return when


def measure_files(
    rules: Any,
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    start: datetime | date | str,
    end: datetime | date | str,
    *,
    columns: Mapping[str, str] | None = None,
    input_format: str | None = None,
    batch_rows: int = BATCH_ROWS,
    step_ms: int = STEP_MS,
) -> MeasureResult:
    """Replays the events of `inputs` in event-time order through `rules`, evaluating every
    batch, and reports uplift and lifecycles over `[start, end)`.

    Every event is replayed, also those after `end`: they close the attribution windows of
    entries made before it. The history is held in memory to be sorted.
    """
    begin, finish = midnight(start), midnight(end)
    if begin > finish:
        raise InvalidInputError(f"--from {begin:%Y-%m-%d} is after --to {finish:%Y-%m-%d}")
    ruleset = RuleSet.coerce(rules)
    engine = Engine(ruleset)
    files = resolve(inputs, input_format)
    parts = []
    times = _TimeFormat()
    unreadable_ts = 0
    for f in files:
        for b in read_batches(f, columns, 1 << 20, engine.rule_columns):
            batch, unreadable = _normalize(b, f.path, times)
            if unreadable is not None:
                # Rows whose `ts` reads as no time cannot be placed in the replay.
                _, bad = unreadable
                unreadable_ts += pc.sum(bad).as_py() or 0
                batch = batch.filter(pc.invert(bad))
            parts.append(pa.Table.from_batches([batch]))
    history = pa.concat_tables(parts, promote_options="permissive") if parts else None
    changes: list[pa.Table] = []
    rejected, rows, customers = unreadable_ts, unreadable_ts, 0
    if history is not None and history.num_rows:
        rows += history.num_rows
        customers = len(pc.unique(history["customer_id"]))
        # Stable: events of one instant keep their file order.
        order = pc.sort_indices(history, sort_keys=[("ts", "ascending")], null_placement="at_end")
        history = history.take(order)
        for lo, hi in _batch_bounds(history, batch_rows, step_ms):
            result = engine.ingest(history.slice(lo, hi - lo))
            changes.append(result.changes)
            rejected += result.rejected.num_rows
    if not changes:  # no events: an empty table of the changes schema
        nothing = pa.table(
            {"customer_id": pa.array([], pa.string()), "ts": pa.array([], pa.int64())}
        )
        changes.append(engine.ingest(nothing).changes)
    changes_table = pa.concat_tables(changes)
    clock = engine.clock_ms
    # Memberships are known up to the clock: a period reaching past it ends with the
    # memberships the replay ended with (every change, the clock's own instant included).
    lifecycle_end = finish if clock is None else min(finish, _from_ms(clock + 1))
    return MeasureResult(
        uplift=engine.uplift(begin, finish),
        lifecycles=lifecycle_report_from_changes(changes_table, ruleset, begin, lifecycle_end),
        changes=changes_table,
        rows=rows,
        rejected=rejected,
        clock=engine.clock,
        customers=customers,
    )


def _batch_bounds(history: pa.Table, batch_rows: int, step_ms: int) -> list[tuple[int, int]]:
    """Row ranges of the sorted history: a new batch at every `step_ms` of event time and
    every `batch_rows` rows."""
    ts = history["ts"]
    if pa.types.is_timestamp(ts.type):
        ts = pc.cast(ts, pa.timestamp("ms", ts.type.tz)).cast(pa.int64())
    elif not pa.types.is_integer(ts.type):
        return [
            (lo, min(lo + batch_rows, len(history))) for lo in range(0, len(history), batch_rows)
        ]
    ms = np.asarray(pc.fill_null(ts.cast(pa.int64()), np.iinfo(np.int64).max))
    buckets = np.floor_divide(ms, max(1, step_ms))
    cuts = np.flatnonzero(np.diff(buckets)) + 1
    bounds: list[tuple[int, int]] = []
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(ms)], strict=True):
        for a in range(lo, hi, batch_rows):
            bounds.append((a, min(a + batch_rows, hi)))
    return bounds


def uplift_of(
    engines: Sequence[Engine], start: datetime | date | str | int, end: datetime | date | str | int
) -> pa.Table:
    """The uplift table over engines that run the same rules on disjoint customers (a
    service's partitions): their counters add up before the statistics are computed."""
    from segstream import _segstream

    inner = [e._inner for e in engines]
    result: pa.Table = _segstream.uplift_of(inner, to_epoch_ms(start), to_epoch_ms(end))
    return result


def _from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def lifecycle_report_from_changes(
    changes: pa.Table,
    rules: Any,
    start: datetime | date | str | int,
    end: datetime | date | str | int,
) -> pa.Table:
    """Per lifecycle, one row per stage and one with ``stage = NULL`` for the lifecycle as a
    whole, counting the changes whose ``at`` lies in ``[start, end)``.

    ``changes`` must hold every change of the lifecycles from the first event on (as a
    replay gives them): ``members_at_end`` replays them up to ``end``. A stage's
    ``entries`` are entries into it; ``progressions_in``/``out`` and ``regressions_in``/
    ``out`` are moves into and out of it; ``dropouts`` and ``completions`` are exits and
    completions from it. ``completion_rate`` is completions / (completions + dropouts):
    of those who left, the share who completed (NULL when nobody left).
    """
    lo, hi = to_epoch_ms(start), to_epoch_ms(end)
    spec = RuleSet.coerce(rules).to_dict()
    rows: list[dict[str, Any]] = []
    wanted = changes.select(["customer_id", "segment", "change", "from_stage", "to_stage", "at"])
    records = wanted.to_pylist()
    for lc in spec.get("lifecycles", []) or []:
        name = lc["name"]
        stages = [s["name"] for s in lc["stages"]]
        counts = {s: dict.fromkeys(LIFECYCLE_SCHEMA.names[3:10], 0) for s in stages}
        where: dict[Any, str | None] = {}
        for r in records:
            if r["segment"] != name:
                continue
            at = to_epoch_ms(r["at"])
            if at >= hi:
                continue
            where[r["customer_id"]] = r["to_stage"]
            if at < lo:
                continue
            kind, src, dst = r["change"], r["from_stage"], r["to_stage"]
            if kind == "enter" and dst in counts:
                counts[dst]["entries"] += 1
            elif kind in ("progress", "regress"):
                word = "progressions" if kind == "progress" else "regressions"
                if dst in counts:
                    counts[dst][f"{word}_in"] += 1
                if src in counts:
                    counts[src][f"{word}_out"] += 1
            elif kind == "exit" and src in counts:
                counts[src]["dropouts"] += 1
            elif kind == "complete" and src in counts:
                counts[src]["completions"] += 1
        members = {s: 0 for s in stages}
        for stage in where.values():
            if stage in members:
                members[stage] += 1
        total = dict.fromkeys(LIFECYCLE_SCHEMA.names[3:10], 0)
        for s in stages:
            for k, v in counts[s].items():
                total[k] += v
            rows.append(_row(name, s, members[s], counts[s]))
        rows.append(_row(name, None, sum(members.values()), total))
    return pa.Table.from_pylist(rows, schema=LIFECYCLE_SCHEMA)


def _row(lifecycle: str, stage: str | None, members: int, c: dict[str, int]) -> dict[str, Any]:
    left = c["completions"] + c["dropouts"]
    return {
        "lifecycle": lifecycle,
        "stage": stage,
        "members_at_end": members,
        **c,
        "completion_rate": c["completions"] / left if left else None,
    }
