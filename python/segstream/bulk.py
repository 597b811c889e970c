"""Bulk re-segmentation: run event files through an engine and read the memberships as of a date.

A reader thread decodes the files (pyarrow releases the GIL while decoding) and prepares
the batches (renaming, the `as_of` cut, line-item grouping) while the calling thread
feeds the engine (which releases the GIL while ingesting); a bounded queue between the
two keeps memory flat whatever the size of the input.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from segstream import _segstream
from segstream.event_types import EventTypeCount, merge_counts
from segstream.event_types import warnings as event_type_warnings
from segstream.file_inputs import (
    ID_TYPES,
    InputError,
    InputFile,
    ReadOptions,
    check_column_map,
    is_empty_file_error,
    read_batches,
    resolve,
)
from segstream.line_items import LINES, SOURCE_ROW, LineItemGrouper

if TYPE_CHECKING:
    from segstream import Engine

#: Rows per batch handed to the engine when evaluation is deferred: what one Parquet row
#: group or scanner batch holds, so batches pass from the decoder to the engine without
#: being copied into larger ones.
DEFAULT_BATCH_SIZE = 1 << 16
#: Rows per batch when every batch is evaluated (rule sets with a cooldown): a customer
#: is evaluated once per batch that touches them, so larger batches save work.
EVALUATED_BATCH_SIZE = 1 << 20
#: Prepared batches waiting for the engine: with the one being ingested and the one being
#: read, memory holds about three batches whatever the size of the input. One waiting is
#: enough to keep the engine busy: reading a batch takes a fraction of ingesting it.
_QUEUE_DEPTH = 1
#: Output formats of `BulkResult.write`, with their file endings.
OUTPUT_FORMATS: dict[str, str] = {"parquet": ".parquet", "arrow": ".arrow", "csv": ".csv"}

#: Schema of `BulkResult.rejected`: fixed, so files with different id types still concatenate.
REJECTED_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("reason", pa.string()),
        ("customer_id", pa.string()),
        ("ts", pa.timestamp("ms", "UTC")),
        ("event_type", pa.string()),
        ("amount", pa.float64()),
        ("order_id", pa.string()),
    ]
)

Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

#: Units of epoch numbers in `ts` (`--ts-unit`).
TS_UNITS: tuple[str, ...] = ("ms", "s")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BulkProgress:
    """Where a bulk run is, passed to the `progress` callback after every batch."""

    rows_read: int
    bytes_read: int
    bytes_total: int
    file: str


@dataclass
class BulkResult:
    """Everything a bulk run produced, plus the counts a user checks the run by."""

    #: customer_id, one boolean column per segment and one stage column per lifecycle.
    memberships: pa.Table
    #: customer_id and the aggregates of `engine.snapshot()`.
    profiles: pa.Table
    #: Input rows the engine refused, with the reason and where they came from.
    rejected: pa.Table
    #: `engine.stats()`: members per segment, per stage for lifecycles.
    sizes: dict[str, Any]
    rows_read: int
    #: Rows with a time after `as_of`.
    rows_skipped: int
    rows_rejected: int
    #: Events handed to the engine (fewer than the rows when line items are grouped).
    events: int
    customers: int
    #: The time the memberships hold at: `as_of`, or the latest event time seen.
    as_of: datetime | None
    elapsed: float
    files: list[str] = field(default_factory=list)
    engine: Engine | None = field(default=None, repr=False)
    #: Rows skipped as repeats of an applied event_id (with `dedupe`).
    rows_duplicate: int = 0
    #: Each distinct event_type value: rows and how it was read, most rows first.
    event_types: list[EventTypeCount] = field(default_factory=list)
    #: Things the user should know that did not stop the run (empty files, event types
    #: that look like a misspelt purchase), one line each.
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_applied(self) -> int:
        """Rows that changed the state: read, minus skipped, rejected and duplicates."""
        return self.rows_read - self.rows_skipped - self.rows_rejected - self.rows_duplicate

    @property
    def rejected_share(self) -> float:
        """Rejected rows as a share of the rows not skipped (0 when there are none)."""
        considered = self.rows_read - self.rows_skipped
        return self.rows_rejected / considered if considered else 0.0

    def top_reasons(self, limit: int = 5) -> list[tuple[str, int]]:
        """The most common rejection reasons, with the quoted values left out so that
        rows refused for the same reason count together."""
        reasons = self.rejected["reason"].to_pylist() if self.rejected.num_rows else []
        counts = Counter(_VALUE.sub("`...`", r or "") for r in reasons)
        return counts.most_common(limit)

    def summary(self) -> dict[str, Any]:
        """The counts as plain JSON-able values."""
        return {
            "files": self.files,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "rows_read": self.rows_read,
            "rows_applied": self.rows_applied,
            "rows_skipped": self.rows_skipped,
            "rows_rejected": self.rows_rejected,
            "rows_duplicate": self.rows_duplicate,
            "events": self.events,
            "customers": self.customers,
            "elapsed_seconds": round(self.elapsed, 3),
            "sizes": self.sizes,
            "event_types": [
                {"event_type": c.event_type, "rows": c.rows, "read_as": c.read_as}
                for c in self.event_types
            ],
            "rejected_reasons": [
                {"reason": reason, "rows": rows} for reason, rows in self.top_reasons(20)
            ],
            "warnings": self.warnings,
        }

    def write(self, out_dir: str | os.PathLike[str], fmt: str = "parquet") -> dict[str, Path]:
        """Write memberships, profiles, rejected (in `fmt`) and summary.json into `out_dir`."""
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(
                f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}"
            )
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for name in ("memberships", "profiles", "rejected"):
            path = out / f"{name}{OUTPUT_FORMATS[fmt]}"
            write_table(getattr(self, name), path, fmt)
            written[name] = path
        summary = out / "summary.json"
        summary.write_text(json.dumps(self.summary(), indent=2) + "\n")
        written["summary"] = summary
        return written


def segment_files(
    rules: Any,
    paths: Paths,
    *,
    as_of: datetime | date | str | int | None = None,
    columns: Mapping[str, str] | None = None,
    batch_size: int | None = None,
    line_items: bool = False,
    dedupe: bool = False,
) -> pa.Table:
    """Memberships of every customer in the files, as of `as_of`: see `resegment`."""
    return resegment(
        rules,
        paths,
        as_of=as_of,
        columns=columns,
        batch_size=batch_size,
        line_items=line_items,
        dedupe=dedupe,
    ).memberships


def resegment(
    rules: Any,
    paths: Paths,
    *,
    as_of: datetime | date | str | int | None = None,
    columns: Mapping[str, str] | None = None,
    batch_size: int | None = None,
    line_items: bool = False,
    dedupe: bool = False,
    input_format: str | None = None,
    progress: Callable[[BulkProgress], None] | None = None,
    threads: int | None = None,
    id_type: str = "text",
    ts_unit: str = "ms",
    tz: str | None = None,
) -> BulkResult:
    """Segment the events in `paths` (files, directories, globs) with `rules`.

    rules: anything `segstream.Engine` accepts (path, YAML text, dict, RuleSet), or an
        Engine to continue from (e.g. one loaded from a checkpoint).
    as_of: events after this time are skipped and counted; the clock is then advanced to
        it, so time-based rules hold as of that instant. A date means its midnight UTC;
        naive datetimes are UTC. None: as of the latest event in the files.
    columns: engine column name -> the files' column name, e.g. {"customer_id": "cust_no"}.
    batch_size: rows per engine call; by default from the input's size (see auto_batch_size).
    line_items: group rows sharing (customer_id, order_id, event_type) into one event.
    dedupe: apply each event_id once per customer (the engine's idempotency rule). Off by
        default: the set of ids seen grows with the input's rows, where everything else
        grows with its customers, and a GROUP BY over the same file counts every row.
    input_format: parquet, ipc, csv, tsv or json, for files whose name does not tell.
    threads: engines ingesting side by side, each holding the customers whose id hashes
        to it (default: the CPU count, at most 8). 1 for a single engine. A rule set with
        a cooldown, or an Engine passed as `rules`, always runs on one.
    id_type: "text" (default: CSV and JSON ids read as text, leading zeros kept) or
        "int" (read customer_id, order_id and event_id as integers).
    ts_unit: unit of epoch numbers in `ts`, "ms" (default) or "s".
    tz: IANA zone of `ts` text without an offset (and of a zone-less `as_of`); UTC if None.
    """
    from segstream import Engine

    started = time.perf_counter()
    check_column_map(columns)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if id_type not in ID_TYPES:
        raise ValueError(f"unknown id type {id_type!r}; use one of {', '.join(ID_TYPES)}")
    if ts_unit not in TS_UNITS:
        raise ValueError(f"unknown ts unit {ts_unit!r}; use one of {', '.join(TS_UNITS)}")
    times = _TimeFormat(ts_unit, tz)
    times.check()
    cutoff = to_utc(as_of, tz)
    warnings: list[str] = []
    files = []
    for file in resolve(paths, input_format):
        if file.size == 0:
            warnings.append(f"{file.path}: empty file, skipped")
        else:
            files.append(file)
    engine = rules if isinstance(rules, Engine) else Engine(rules)
    if cutoff is not None and engine.clock is not None and engine.clock > cutoff:
        # The clock never goes back, so the memberships could not hold as of the cutoff.
        raise ValueError(
            f"as_of {cutoff.isoformat()} is before the engine's clock {engine.clock.isoformat()}"
        )

    # Only the memberships at the end are wanted, so rules are evaluated once per customer
    # at the end rather than once per batch; cooldowns depend on every exit along the way,
    # so rule sets with one are evaluated batch by batch.
    evaluate = not engine.defers_exactly
    batch_size = batch_size or auto_batch_size(files, evaluate)
    # Decode only what changes the result: tag columns no rule reads are skipped, as is
    # event_id unless deduplicating. order_id is kept for grouping and for rejected.*.
    wanted = {*engine.rule_columns, "order_id", *(["event_id"] if dedupe else [])}
    if line_items:
        wanted |= {"product_ids", "categories", "flags"}
    # Customers are split by a hash of their id over `threads` engines that ingest every
    # batch side by side (each skips the others' rows, with the GIL released) and merge at
    # the end. Only a fresh run splits: an engine passed in may already hold any customer.
    if threads is None:
        threads = min(os.cpu_count() or 1, _MAX_THREADS)
    if threads < 1:
        raise ValueError(f"threads must be positive, got {threads}")
    shards = 1 if evaluate or isinstance(rules, Engine) else threads
    feeder = _ShardedIngest([engine, *(Engine(rules) for _ in range(shards - 1))], evaluate)
    options = ReadOptions(id_type=id_type)
    reader = _Reader(files, columns, batch_size, cutoff, line_items, wanted, options, times)
    bytes_total = sum(f.size for f in files)
    rejected: list[pa.Table] = []
    rows_read = rows_skipped = rows_rejected = events = duplicates = 0
    latest: int | None = None
    type_counts: list[list[EventTypeCount]] = []
    if cutoff is not None:
        # Start at the as-of time: every event then arrives late, which the engine
        # accepts, and window entries too old to count at that time are never stored.
        feeder.advance_to(cutoff)
    reader.start()
    try:
        for chunk in reader:
            rows_read += chunk.rows_read
            rows_skipped += chunk.rows_skipped
            if chunk.rejected is not None:
                rejected.append(chunk.rejected)
                rows_rejected += chunk.rejected.num_rows
            for part in chunk.parts:
                events += part.table.num_rows
                try:
                    done = feeder.ingest(part.table)
                except Exception as exc:
                    exc.add_note(f"while ingesting {chunk.file}")
                    raise
                if done.max_ts_ms is not None:
                    latest = done.max_ts_ms if latest is None else max(latest, done.max_ts_ms)
                duplicates += done.duplicates
                type_counts.append(done.event_types)
                if done.refused.num_rows:
                    table, lines = _rejected_rows(part, done.refused, chunk.file)
                    rejected.append(table)
                    rows_rejected += lines
            if progress is not None:
                progress(BulkProgress(rows_read, chunk.bytes_read, bytes_total, chunk.file))
        clock = cutoff or (_from_ms(latest) if latest is not None else None)
        if clock is not None:
            # Only the memberships at `clock` are wanted, not every change on the way.
            feeder.advance_to(clock)
        feeder.merge()
    finally:
        reader.stop()
        feeder.close()
    warnings.extend(reader.warnings)
    counts = merge_counts(type_counts)
    warnings.extend(event_type_warnings(counts))
    snapshot = engine.snapshot()
    names = [*engine.rules.segment_names, *engine.rules.lifecycle_names]
    sizes = _in_rule_order(engine.stats(), engine.rules.to_dict())
    return BulkResult(
        memberships=snapshot.select(["customer_id", *names]),
        profiles=snapshot.drop_columns(names),
        rejected=pa.concat_tables(rejected) if rejected else REJECTED_SCHEMA.empty_table(),
        sizes=sizes,
        rows_read=rows_read,
        rows_skipped=rows_skipped,
        rows_rejected=rows_rejected,
        events=events,
        customers=snapshot.num_rows,
        as_of=clock,
        elapsed=time.perf_counter() - started,
        files=[f.path for f in files],
        engine=engine,
        rows_duplicate=duplicates,
        event_types=counts,
        warnings=warnings,
    )


def auto_batch_size(files: Sequence[InputFile], evaluate: bool = False) -> int:
    """DEFAULT_BATCH_SIZE; with evaluation per batch, EVALUATED_BATCH_SIZE for large
    inputs, less for small ones (at least about eight batches per run, so that reading
    the next batch overlaps with ingesting this one), never under 64Ki rows.
    """
    if not evaluate:
        return DEFAULT_BATCH_SIZE
    rows = sum(f.rows_hint or f.size // 100 for f in files)
    return max(1 << 16, min(EVALUATED_BATCH_SIZE, rows // 8))


def _in_rule_order(stats: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Segment sizes in the order the rules list them, lifecycle stages in stage order."""
    ordered: dict[str, Any] = {}
    for segment in spec.get("segments") or []:
        ordered[segment["name"]] = stats.get(segment["name"], 0)
    for lifecycle in spec.get("lifecycles") or []:
        counts = stats.get(lifecycle["name"]) or {}
        ordered[lifecycle["name"]] = {
            stage["name"]: counts.get(stage["name"], 0) for stage in lifecycle["stages"]
        }
    return ordered


def to_utc(value: datetime | date | str | int | None, tz: str | None = None) -> datetime | None:
    """A datetime (naive = UTC), date (midnight UTC), text or epoch ms as an aware UTC
    datetime. Text is read by the engine's parser (ISO-8601, a date, epoch ms), zone-less
    text in `tz` (UTC if None). Exact to the millisecond: no float on the way.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time cannot be a bool")
    if isinstance(value, int):
        return _from_ms(value)
    if isinstance(value, str):
        try:
            return _from_ms(_segstream.parse_time(value, tz))
        except ValueError as exc:
            raise ValueError(f"cannot read {value.strip()!r} as a time: {exc}") from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _from_ms(ms: int) -> datetime:
    # timedelta arithmetic is exact; fromtimestamp(ms / 1000) goes through a float.
    return _EPOCH + timedelta(milliseconds=ms)


# A value quoted in a reason (`...`): left out when reasons are counted together.
_VALUE = re.compile(r"`[^`]*`")


@dataclass(frozen=True)
class _TimeFormat:
    """How `ts` numbers and zone-less text are read (--ts-unit, --tz)."""

    unit: str = "ms"
    tz: str | None = None

    def check(self) -> None:
        """Raises ValueError for an unknown zone, before any file is read."""
        _segstream.parse_time("2000-01-01", self.tz)

    def parse(self, ts: pa.Array) -> tuple[pa.Array, pa.Array]:
        """Epoch ms (null where unreadable) and the reasons (null where read), row by row.

        Epoch milliseconds that look like seconds are refused: in an event file they are
        a unit mistake (pass --ts-unit s), not events of January 1970.
        """
        batch = pa.record_batch([ts], names=["ts"])
        table = _segstream.parse_times(batch, self.unit, self.tz, self.unit == "ms")
        return table["ms"].combine_chunks(), table["reason"].combine_chunks()


@dataclass
class _Part:
    """A batch of events ready for the engine and how to find its rows in the file."""

    table: pa.Table | pa.RecordBatch
    #: Row in the file of each event; None when event i is row `first_row + i`.
    source_rows: pa.Array | pa.ChunkedArray | None
    first_row: int
    #: Input lines behind each event (line items); None when it is one each.
    lines: pa.Array | pa.ChunkedArray | None = None


@dataclass
class _Chunk:
    file: str
    parts: list[_Part]
    rows_read: int
    rows_skipped: int
    #: Bytes read over all files so far (an estimate within a text file).
    bytes_read: int
    #: Rows refused before the engine (a `ts` that reads as no time), in REJECTED_SCHEMA.
    rejected: pa.Table | None = None


@dataclass
class _Ingested:
    """What the engines did with one part."""

    refused: pa.Table
    event_types: list[EventTypeCount]
    max_ts_ms: int | None
    duplicates: int


_DONE = object()
#: Most engines a bulk run splits its customers over by default.
_MAX_THREADS = 8


class _ShardedIngest:
    """One engine, or several that each own a shard of the customers and ingest every
    batch on their own thread (the first on the caller's)."""

    def __init__(self, engines: list[Engine], evaluate: bool) -> None:
        self.engines = engines
        self._evaluate = evaluate
        count = len(engines)
        self._pool = (
            ThreadPoolExecutor(max_workers=count - 1, thread_name_prefix="segstream-shard")
            if count > 1
            else None
        )

    def _each(self, call: Callable[[int, Engine], Any]) -> list[Any]:
        """`call` on every engine at once; results in engine order. Waits for all of them
        before raising, so no thread is left working on an engine."""
        if self._pool is None:
            return [call(0, self.engines[0])]
        futures = [self._pool.submit(call, k, e) for k, e in enumerate(self.engines[1:], 1)]
        try:
            first = call(0, self.engines[0])
        finally:
            wait(futures)
        return [first, *(f.result() for f in futures)]

    def ingest(self, table: pa.Table) -> _Ingested:
        """Ingests the table; returns the refused rows (row, reason) of every shard, the
        event types seen and the latest time applied."""
        count = len(self.engines)
        if count == 1:
            r = self.engines[0].ingest(table, evaluate=self._evaluate)
            return _Ingested(r.rejected, list(r.event_types), r.max_ts_ms, r.duplicates)
        results = self._each(lambda k, e: e.ingest(table, evaluate=False, shard=(k, count)))
        refused = pa.concat_tables([r.rejected for r in results])
        latest = [r.max_ts_ms for r in results if r.max_ts_ms is not None]
        return _Ingested(
            refused.sort_by("row") if refused.num_rows else refused,
            merge_counts(r.event_types for r in results),
            max(latest) if latest else None,
            sum(r.duplicates for r in results),
        )

    def advance_to(self, clock: datetime) -> None:
        self._each(lambda _, e: e.advance_to(clock, net=True))

    def merge(self) -> None:
        """Moves every shard's customers into the first engine."""
        first = self.engines[0]
        for other in self.engines[1:]:
            first.merge(other)
        del self.engines[1:]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class _Reader(threading.Thread):
    """Reads and prepares the files on its own thread; iterate it to get the chunks in order."""

    def __init__(
        self,
        files: list[InputFile],
        columns: Mapping[str, str] | None,
        batch_size: int,
        cutoff: datetime | None,
        line_items: bool,
        wanted: set[str],
        options: ReadOptions,
        times: _TimeFormat,
    ) -> None:
        super().__init__(name="segstream-reader", daemon=True)
        self._options = options
        self._times = times
        #: Files skipped as empty although not zero bytes (a compressed empty CSV).
        self.warnings: list[str] = []
        self._files = files
        self._columns = columns
        self._batch_size = batch_size
        self._cutoff = cutoff
        self._line_items = line_items
        self._wanted = wanted
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            done_bytes = 0
            for file in self._files:
                try:
                    for chunk in self._read_file(file, done_bytes):
                        if not self._put(chunk):
                            return
                except InputError as exc:
                    if not is_empty_file_error(exc):
                        raise
                    self.warnings.append(f"{file.path}: empty file, skipped")
                done_bytes += file.size
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def __iter__(self) -> Iterator[_Chunk]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)

    def _put(self, item: Any) -> bool:
        # A timeout loop rather than a blocking put, so that stop() is noticed.
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read_file(self, file: InputFile, done_bytes: int) -> Iterator[_Chunk]:
        grouper = LineItemGrouper(file.path) if self._line_items else None
        row = 0
        batches = read_batches(file, self._columns, self._batch_size, self._wanted, self._options)
        for batch in batches:
            n = batch.num_rows
            batch, unreadable = _normalize(batch, file.path, self._times)
            refused = None
            readable = None
            if unreadable is not None:
                reasons, bad = unreadable
                readable = pc.invert(bad)
                index = pc.indices_nonzero(bad)
                why = pa.table({"row": index, "reason": pc.filter(reasons, bad)})
                refused, _ = _rejected_rows(_Part(batch, None, row), why, file.path)
            keep = _keep_mask(batch["ts"], self._cutoff) if self._cutoff is not None else None
            if readable is not None:
                keep = readable if keep is None else pc.and_(keep, readable)
            kept = n if keep is None else pc.sum(keep).as_py() or 0
            if grouper is not None:
                table = pa.Table.from_batches([batch]).append_column(SOURCE_ROW, _arange(row, n))
                if kept < n:
                    table = table.filter(keep)
                parts = [_grouped_part(t) for t in grouper.push(table)]
            elif kept < n:
                parts = [_Part(batch.filter(keep), pc.indices_nonzero(keep), row)]
            else:
                parts = [_Part(batch, None, row)]
            row += n
            if file.rows_hint:
                within = min(file.size, file.size * row // file.rows_hint)
            else:
                within = 0
            unread = 0 if refused is None else refused.num_rows
            yield _Chunk(file.path, parts, n, n - kept - unread, done_bytes + within, refused)
        tail = [_grouped_part(t) for t in grouper.flush()] if grouper is not None else []
        yield _Chunk(file.path, tail, 0, 0, done_bytes + file.size)


def _grouped_part(table: pa.Table) -> _Part:
    source_rows = table[SOURCE_ROW] if SOURCE_ROW in table.column_names else None
    lines = table[LINES] if LINES in table.column_names else None
    events = table.drop_columns([c for c in (SOURCE_ROW, LINES) if c in table.column_names])
    return _Part(events, source_rows, 0, lines)


def _arange(start: int, n: int) -> pa.Array:
    # pyarrow has no arange; a cumulative sum of ones is one vectorised kernel.
    return pc.add(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), start - 1)


def _normalize(
    batch: pa.RecordBatch, path: str, times: _TimeFormat
) -> tuple[pa.RecordBatch, tuple[pa.Array, pa.Array] | None]:
    """Give the columns types the engine takes, whatever the file format inferred; and
    the rows whose `ts` reads as no time, as (reasons, mask), or None if there are none.

    Optional columns that are null throughout (a CSV block of page views has an empty
    `amount`) are typed `null` by the readers; they say nothing, so they are dropped.
    A `ts` of text or numbers is parsed value by value by the engine's parser (see
    `_TimeFormat`), so one bad value is one rejected row, not a failed file.
    """
    empty = [
        i
        for i, f in enumerate(batch.schema)
        if pa.types.is_null(f.type) and f.name not in ("customer_id", "ts")
    ]
    for i in reversed(empty):
        batch = batch.remove_column(i)
    if "ts" not in batch.schema.names:
        return batch, None
    ts = batch["ts"]
    kind = ts.type
    if pa.types.is_timestamp(kind):
        return batch, None
    if pa.types.is_date(kind):
        converted = pc.cast(ts, pa.timestamp("ms", "UTC"))
        unreadable = None
    elif (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_null(kind)
        or (pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type))
    ):
        ms, reasons = times.parse(ts)
        converted = pc.cast(ms, pa.timestamp("ms", "UTC"))
        bad = pc.is_valid(reasons)
        unreadable = (reasons, bad) if pc.any(bad).as_py() else None
    else:
        return batch, None  # let the engine name the column and the type it refuses
    index = batch.schema.get_field_index("ts")
    return batch.set_column(index, "ts", converted), unreadable


def _bound(kind: pa.DataType, cutoff: datetime) -> pa.Scalar:
    if pa.types.is_timestamp(kind):
        value = cutoff if kind.tz is not None else cutoff.replace(tzinfo=None)
        return pa.scalar(value, kind)
    return pa.scalar(int(cutoff.timestamp() * 1000), kind)  # int64 epoch ms


def _keep_mask(ts: pa.Array, cutoff: datetime) -> pa.Array:
    """Rows at or before the cutoff; rows without a time are kept so the engine rejects them."""
    if not (pa.types.is_timestamp(ts.type) or pa.types.is_integer(ts.type)):
        return pa.repeat(pa.scalar(True), len(ts))
    return pc.or_kleene(pc.less_equal(ts, _bound(ts.type, cutoff)), pc.is_null(ts))


def _rejected_rows(part: _Part, refused: pa.Table, path: str) -> tuple[pa.Table, int]:
    """The refused events with reason and source row, in REJECTED_SCHEMA; and their line count."""
    index = refused["row"].combine_chunks()
    rows = part.table.take(index)
    if part.source_rows is None:
        source = pc.add(index, part.first_row)
    else:
        source = pc.add(pc.take(part.source_rows, index), part.first_row)
    lines = len(index) if part.lines is None else int(pc.sum(pc.take(part.lines, index)).as_py())
    columns: dict[str, Any] = {
        "source_file": pa.repeat(pa.scalar(path), len(index)),
        "source_row": pc.cast(source, pa.int64()),
        "reason": pc.cast(refused["reason"], pa.string()),
    }
    for name in ("customer_id", "ts", "event_type", "amount", "order_id"):
        target = REJECTED_SCHEMA.field(name).type
        columns[name] = (
            _cast_or_null(rows[name], target)
            if name in rows.schema.names
            else (pa.nulls(len(index), target))
        )
    return pa.table(columns, schema=REJECTED_SCHEMA), lines


def _cast_or_null(values: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array:
    """The rejected row's value for display; a value that does not convert shows as null."""
    try:
        if pa.types.is_timestamp(target) and pa.types.is_integer(values.type):
            values = pc.cast(values, pa.timestamp("ms"))
        if pa.types.is_timestamp(target) and pa.types.is_string(values.type):
            return pa.nulls(len(values), target)
        return pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(len(values), target)


def write_table(table: pa.Table, path: str | os.PathLike[str], fmt: str) -> None:
    """Write a table as Parquet, Arrow IPC (Feather v2) or CSV (lists joined with '|')."""
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "arrow":
        feather.write_feather(table, path)
    elif fmt == "csv":
        pacsv.write_csv(_flat_for_csv(table), path)
    else:
        raise ValueError(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")


def _flat_for_csv(table: pa.Table) -> pa.Table:
    """CSV has no nested values: lists become 'a|b|c', maps and structs their JSON-ish text."""
    for i, f in enumerate(table.schema):
        kind = f.type
        if pa.types.is_dictionary(kind):
            table = table.set_column(i, f.name, pc.cast(table[i], kind.value_type))
            kind = kind.value_type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            joined = pc.binary_join(pc.cast(table[i], pa.list_(pa.string())), "|")
            table = table.set_column(i, f.name, joined)
        elif pa.types.is_nested(kind):
            text = pa.array(
                [None if v is None else json.dumps(v, default=str) for v in table[i].to_pylist()],
                pa.string(),
            )
            table = table.set_column(i, f.name, text)
    return table
