"""`segstream.Engine`: the Python face of the Rust engine."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa

from segstream import _segstream
from segstream.event_types import EventTypeCount
from segstream.rules import RuleSet
from segstream.types import ArrowData, IngestOutcome, RuleSource

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class IngestResult:
    """What one ingest call did."""

    changes: pa.Table
    """Membership changes (customer_id, segment, change, from_stage, to_stage, at, cause,
    holdout, capped, change_id)."""
    rejected: pa.Table
    """Rows that were not applied: input row index and reason."""
    applied: int = 0
    """Rows applied."""
    duplicates: int = 0
    """Rows skipped because their event_id was already applied."""
    event_types: tuple[EventTypeCount, ...] = ()
    """Each distinct event_type value of the input (Arrow batches): its rows and how it
    was read (purchase, refund, signal, ignored, rejected)."""
    max_ts_ms: int | None = None
    """Latest event time applied, epoch ms."""


def to_epoch_ms(ts: datetime | date | int | str) -> int:
    """Epoch milliseconds from a datetime (naive = UTC), date (midnight UTC), text or int ms.

    Text is read by the engine's own parser (the one every reader uses): ISO-8601 with or
    without a zone (none = UTC), a date, or epoch milliseconds. All integer arithmetic.
    """
    if isinstance(ts, bool):
        raise TypeError("a timestamp cannot be a bool")
    if isinstance(ts, int):
        return ts
    if isinstance(ts, str):
        ms: int = _segstream.parse_time(ts)  # InvalidInputError (a ValueError) says why not
        return ms
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        # Integer arithmetic: float seconds would round some milliseconds away.
        return (ts - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(ts, date):
        return (datetime(ts.year, ts.month, ts.day, tzinfo=UTC) - _EPOCH) // timedelta(
            milliseconds=1
        )
    raise TypeError(f"expected datetime, date, ISO string or epoch ms, got {type(ts).__name__}")


def _result(raw: IngestOutcome) -> IngestResult:
    counts = tuple(EventTypeCount(name, rows, how) for name, rows, how in raw.event_types)
    return IngestResult(raw.changes, raw.rejected, raw.applied, raw.duplicates, counts, raw.max_ts)


class Engine:
    """Per-customer aggregates and segment rules over Arrow batches.

    ``rules`` is a path to a YAML rule file, YAML text, a dict or a RuleSet.
    ``column_map`` maps engine column names to yours, e.g. ``{"customer_id": "cust_no"}``.
    """

    def __init__(self, rules: RuleSource, *, column_map: Mapping[str, str] | None = None) -> None:
        self.rules = RuleSet.coerce(rules)
        self._inner = _segstream.Engine(
            self.rules.to_json(), dict(column_map) if column_map else None
        )

    @classmethod
    def _wrap(cls, inner: _segstream.Engine) -> Engine:
        obj = cls.__new__(cls)
        obj._inner = inner
        obj.rules = RuleSet(json.loads(inner.rules_json))
        return obj

    def ingest(
        self, data: ArrowData, *, evaluate: bool = True, shard: tuple[int, int] | None = None
    ) -> IngestResult:
        """Applies events from any Arrow PyCapsule object (pyarrow, polars, DuckDB, …).

        With ``evaluate=False`` the events are applied and the clock moves, but no rule is
        evaluated: the customers they touched are evaluated once, at the clock of that
        moment, by the next call that reads or changes memberships, and the changes of that
        evaluation are not reported. For loading history when only the memberships at the
        end matter (the bulk CLI does this): a customer seen in every batch is evaluated
        once instead of once per batch. Segment cooldowns only see exits that were
        evaluated, so they are looser after a deferred load.

        ``shard=(index, count)`` (with ``evaluate=False``) applies only the rows of the
        customers whose id hashes to ``index``: ``count`` engines fed the same batches on
        as many threads hold disjoint customers, and :meth:`merge` joins them.
        """
        return _result(self._inner.ingest(data, evaluate, shard))

    def merge(self, other: Engine) -> None:
        """Moves every customer of ``other`` into this engine; ``other`` is left empty.

        Both must run the same rules and hold no customer in common (the shards of one
        input); otherwise InvalidInputError, and nothing changes. The clock
        becomes the later of the two.
        """
        self._inner.merge(other._inner)

    def ingest_json(self, messages: Sequence[bytes | str]) -> IngestResult:
        """Applies JSON messages (flat events, Segment-spec track/identify, trait upserts)."""
        return _result(self._inner.ingest_json(list(messages)))

    def update_traits(self, data: ArrowData) -> pa.Table:
        """Upserts profile traits (customer_id + one column per declared trait); returns changes.

        All or nothing: when a row cannot be read (a value that does not fit its trait's
        declared type, such as ``'big'`` or ``500.7`` for an int trait, or a null id),
        InvalidInputError (a ValueError) names the rows and why, and nothing is applied.
        :meth:`update_traits_result` applies the other rows and returns those as a table.
        """
        changes, *_ = self._inner.update_traits(data, True)
        result: pa.Table = changes
        return result

    def update_traits_result(self, data: ArrowData) -> IngestResult:
        """Upserts the rows that can be read; the others are in ``rejected`` (row, reason:
        the trait, the value and the declared type), and none of their traits is set."""
        return _result(self._inner.update_traits(data))

    def advance_to(self, ts: datetime | date | int | str, *, net: bool = False) -> pa.Table:
        """Moves the clock forward; returns changes caused by time alone.

        ``ts`` equal to the clock does nothing; before it, InvalidInputError (a
        ValueError), and nothing changes: the clock never goes back, and doing nothing
        silently would leave you reading memberships of a later time than you asked for.
        To move the clock only forward, compare with :attr:`clock_ms` first.

        Each change comes at the instant it happened, so a customer may enter and leave a
        segment within one call. With ``net=True`` the clock jumps: every customer due by
        ``ts`` is evaluated once, at ``ts``, and the changes are the net ones, stamped
        ``ts``; much cheaper over a long stretch (a bulk run's ``as_of``).
        """
        result: pa.Table = self._inner.advance_to(to_epoch_ms(ts), net)
        return result

    @property
    def clock(self) -> datetime | None:
        """Engine time (UTC), None before any event."""
        ms = self._inner.clock
        if ms is None:
            return None
        return datetime.fromtimestamp(ms / 1000, tz=UTC)

    @property
    def clock_ms(self) -> int | None:
        """Engine time in epoch milliseconds."""
        ms: int | None = self._inner.clock
        return ms

    def members(
        self, segment: str, *, holdout: Literal["include", "exclude", "only"] = "include"
    ) -> pa.Array:
        """Customer ids in a segment, a lifecycle (any stage) or ``lifecycle.stage``.

        For a segment with a ``holdout``, ``holdout="exclude"`` gives the treatment group
        (the audience to contact), ``"only"`` the control group, and the default
        ``"include"`` both: everyone the rule holds for, as :meth:`stats`, the snapshot's
        segment column and the changes count them. Lifecycles have no holdout.
        """
        result: pa.Array = self._inner.members(segment, holdout)
        return result

    def profile(self, customer_id: str | int) -> dict[str, Any]:
        """Aggregates, traits, segments and stages of one customer; NotFoundError (a
        KeyError) if unknown."""
        result: dict[str, Any] = self._inner.profile(customer_id)
        return result

    def snapshot(self) -> pa.Table:
        """One row per customer: id, aggregates, traits, a column per segment and lifecycle,
        and ``<segment>__holdout`` (a member in the control group) per segment with a
        holdout."""
        result: pa.Table = self._inner.snapshot()
        return result

    def stats(self) -> dict[str, Any]:
        """Segment sizes; lifecycles map stage -> customers."""
        result: dict[str, Any] = self._inner.stats()
        return result

    def save(self, path: str | os.PathLike[str], offsets: Mapping[str, Any] | None = None) -> None:
        """Writes a checkpoint (Arrow IPC file) atomically, with the source offsets it covers."""
        self._inner.save(
            os.fspath(path), json.dumps(dict(offsets)) if offsets is not None else None
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], rules: RuleSource | None = None) -> Engine:
        """Reads a checkpoint. With ``rules``, refuses a checkpoint made with other rules."""
        fingerprint = None
        if rules is not None:
            fingerprint = _segstream.Engine(RuleSet.coerce(rules).to_json()).fingerprint
        return cls._wrap(_segstream.Engine.load(os.fspath(path), fingerprint))

    @property
    def source_offsets(self) -> dict[str, Any]:
        """Source offsets saved with the checkpoint this engine was loaded from."""
        result: dict[str, Any] = json.loads(self._inner.offsets)
        return result

    def replace_rules(self, rules: RuleSource) -> pa.Table:
        """Replaces the rules and re-evaluates everyone; returns changes with cause ``rules``."""
        new = RuleSet.coerce(rules)
        changes: pa.Table = self._inner.replace_rules(new.to_json())
        self.rules = new
        return changes

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the compiled rules."""
        result: str = self._inner.fingerprint
        return result

    @property
    def num_customers(self) -> int:
        """Customers known to the engine."""
        result: int = self._inner.num_customers
        return result

    @property
    def membership_columns(self) -> list[str]:
        """The snapshot's membership columns, in rule order: per segment its boolean column
        and, with a holdout, ``<segment>__holdout``; per lifecycle its stage column."""
        result: list[str] = self._inner.membership_columns
        return result

    @property
    def rule_columns(self) -> list[str]:
        """Event columns the rules read: a reader may skip the others' tag columns.

        Always customer_id, ts, event_type, amount and quantity; product_ids, categories
        and flags only when a rule mentions them. (event_id and order_id are not rule
        inputs: they dedupe events and group order lines.)
        """
        result: list[str] = self._inner.rule_columns
        return result

    def merge_customers(self, data: Any) -> pa.Table:
        """Merges profiles of one person; returns the changes (cause ``merge``).

        ``data`` is any Arrow table with ``customer_id`` and ``into`` columns (the
        Segment/RudderStack ``alias`` call: ``previousId`` -> ``userId``). Each row moves
        the first customer's state into the second's; the absorbed id leaves its segments
        and the survivor enters what it now qualifies for. Later events of the absorbed id
        go to the survivor. Merging an id into itself or into an unknown id, or an id
        already merged elsewhere, is an InvalidInputError and changes nothing; see
        docs/measure.md for chains and repeats.
        """
        result: pa.Table = self._inner.merge_customers(data)
        return result

    def uplift(
        self, start: datetime | date | int | str, end: datetime | date | int | str
    ) -> pa.Table:
        """Treatment against holdout per segment with a ``conversion`` spec (docs/measure.md).

        Counts the entries made in ``[start, end)`` (UTC midnights: the counters are kept per
        day of entry) whose attribution windows closed by the engine clock; entries still
        open are counted in ``immature_entries`` only.
        """
        result: pa.Table = self._inner.uplift(to_epoch_ms(start), to_epoch_ms(end))
        return result

    @property
    def defers_exactly(self) -> bool:
        """True when ``ingest(..., evaluate=False)`` ends in the memberships that evaluating
        every batch would; false when a segment has a cooldown (it depends on every exit)."""
        return self._inner.defers_exactly

    @property
    def pending_timers(self) -> int:
        """Customers waiting in the timer index."""
        result: int = self._inner.pending_timers
        return result

    def memory(self) -> dict[str, int]:
        """Approximate state sizes in bytes."""
        result: dict[str, int] = self._inner.memory()
        return result

    def __repr__(self) -> str:
        return f"Engine({self.rules!r}, customers={self.num_customers}, clock={self.clock})"
