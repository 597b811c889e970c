"""Turns batches of Kafka messages into engine calls, and engine results into output messages.

This is the service without Faust: it owns one `PartitionState` per assigned partition,
decodes nothing in Python but the Arrow IPC framing (JSON goes to `Engine.ingest_json`
as raw bytes), skips what a checkpoint already covers, and collects the change rows and
dead letters that the Faust app then publishes. Keeping it free of Kafka makes the
exactly-once bookkeeping testable on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import pyarrow as pa

from segstream._segstream import unusual_messages
from segstream.service.checkpoints import CheckpointStore
from segstream.service.codec import DeadLetter, is_arrow_ipc, read_arrow_ipc
from segstream.service.partition_state import PartitionState, merge_stats
from segstream.service.settings import ServiceSettings

if TYPE_CHECKING:
    from segstream import Engine

log = logging.getLogger(__name__)


class SourceMessage(Protocol):
    """What the processor reads from a Kafka message (Faust's `Message` has these)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Output:
    """What one call produced: change tables to publish and messages to dead-letter."""

    changes: list[pa.Table] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: int = 0
    skipped: int = 0
    #: partition -> messages applied (for the metrics).
    applied_by_partition: dict[int, int] = field(default_factory=dict)

    def add_changes(self, table: pa.Table | None) -> None:
        if table is not None and table.num_rows:
            self.changes.append(table)

    def extend(self, other: Output) -> None:
        self.changes.extend(other.changes)
        self.dead_letters.extend(other.dead_letters)
        self.applied += other.applied
        self.skipped += other.skipped
        for p, n in other.applied_by_partition.items():
            self.applied_by_partition[p] = self.applied_by_partition.get(p, 0) + n


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Processor:
    """The partitions a worker owns and what happens to the messages that reach them."""

    def __init__(
        self,
        settings: ServiceSettings,
        store: CheckpointStore,
        engine_factory: Callable[[str], Engine] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.partitions: dict[int, PartitionState] = {}
        self._engine_factory = engine_factory or _default_engine
        self._input_topics = (settings.events_topic, settings.traits_topic)
        self._rules_fingerprint: str | None = None

    # -- assignment -------------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> Output:
        """Take over `partitions`: load each one's checkpoint, or start an empty engine.

        A checkpoint written under other rules is brought to the current rules with
        `replace_rules`; the changes that causes (cause `rules`) are in the output.
        """
        out = Output()
        for p in sorted(set(partitions) - self.partitions.keys()):
            engine = self.store.load(p)
            if engine is None:
                state = PartitionState(partition=p, engine=self._new_engine())
                log.info("partition %d: no checkpoint, starting empty", p)
            else:
                state = PartitionState.restore(p, engine, self._input_topics)
                log.info(
                    "partition %d: restored %s at %s", p, self.store.describe(p), state.applied
                )
                if engine.fingerprint != self._fingerprint():
                    log.info("partition %d: checkpoint has other rules; replacing them", p)
                    out.add_changes(engine.replace_rules(self.settings.rules))
                    state.dirty = True
            self.partitions[p] = state
        return out

    def check_rules(self) -> str:
        """Compile the rules now (raises `RuleError`), rather than at the first assignment."""
        return self._fingerprint()

    def _new_engine(self) -> Engine:
        return self._engine_factory(self.settings.rules)

    def _fingerprint(self) -> str:
        if self._rules_fingerprint is None:
            self._rules_fingerprint = str(self._new_engine().fingerprint)
        return self._rules_fingerprint

    def revoke(self, partitions: Iterable[int]) -> None:
        """Give up `partitions`, checkpointing them first so the next owner resumes exactly."""
        for p in sorted(set(partitions)):
            state = self.partitions.get(p)
            if state is None:
                continue
            if state.dirty:
                self._save(state, time.monotonic())
            del self.partitions[p]

    # -- messages ---------------------------------------------------------------------

    def process(self, messages: Sequence[SourceMessage]) -> Output:
        """Apply a batch (any mix of partitions and topics, in consumption order)."""
        runs: list[tuple[tuple[str, int], list[SourceMessage]]] = []
        for message in messages:
            source = (message.topic, message.partition)
            if runs and runs[-1][0] == source:
                runs[-1][1].append(message)
            else:
                runs.append((source, [message]))
        return self.process_fetched(runs)

    def process_fetched(
        self, fetched: Iterable[tuple[tuple[str, int], Sequence[SourceMessage]]]
    ) -> Output:
        """Apply what a fetch returned: `((topic, partition), messages)` in offset order.

        aiokafka's `getmany` hands records over grouped like this; pass `.items()`.
        """
        out = Output()
        for (topic, partition), messages in fetched:
            if not messages:
                continue
            state = self.partitions.get(partition)
            if state is None:
                # Buffered before a revoke: the new owner reads it from its checkpoint.
                out.skipped += len(messages)
                continue
            done = self._process_source(state, topic, messages)
            done.applied_by_partition[partition] = (
                done.applied_by_partition.get(partition, 0) + done.applied
            )
            out.extend(done)
        return out

    def _process_source(
        self, state: PartitionState, topic: str, messages: Sequence[SourceMessage]
    ) -> Output:
        values = [m.value for m in messages]
        if not state.seen(topic, messages[0].offset) and not unusual_messages(
            values, self.settings.max_message_bytes
        ):
            # The usual fetch: new JSON messages only. One engine call, no loop here.
            out = self._ingest_json(state, messages, values)
            state.mark_applied_through(topic, messages[-1].offset, len(messages))
            return out
        return self._process_partition(state, messages)

    def _process_partition(self, state: PartitionState, batch: Sequence[SourceMessage]) -> Output:
        out = Output()
        run: list[SourceMessage] = []
        limit = self.settings.max_message_bytes
        for message in batch:
            if state.seen(message.topic, message.offset):
                out.skipped += 1
                continue
            value = message.value
            if value is None or len(value) == 0:
                out.dead_letters.append(self._dead(message, "empty message (no value)"))
            elif len(value) > limit:
                out.dead_letters.append(
                    self._dead(
                        message, f"message of {len(value)} bytes exceeds the {limit}-byte limit"
                    )
                )
            elif is_arrow_ipc(value):
                # Keep the order of the partition: JSON before this message goes in first.
                out.extend(self._ingest_json_run(state, run))
                run = []
                out.extend(self._ingest_arrow(state, message))
            else:
                run.append(message)
                continue
            state.mark_applied(message.topic, message.offset)
        out.extend(self._ingest_json_run(state, run))
        return out

    def _ingest_json_run(self, state: PartitionState, run: list[SourceMessage]) -> Output:
        out = self._ingest_json(state, run, [m.value or b"" for m in run])
        for message in run:
            state.mark_applied(message.topic, message.offset)
        return out

    def _ingest_json(
        self,
        state: PartitionState,
        run: Sequence[SourceMessage],
        values: Sequence[bytes | None],
    ) -> Output:
        """Apply JSON messages (non-empty values); the caller marks them applied."""
        out = Output()
        if not run:
            return out
        try:
            # None values never get here: unusual_messages sends them the other way.
            result = state.engine.ingest_json(cast("Sequence[bytes]", values))
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the partition
            if len(run) == 1:
                out.dead_letters.append(self._dead(run[0], _reason(exc)))
                return out
            # The engine is meant to reject messages one by one; if it refused the whole
            # batch, find the culprit by applying the messages one at a time.
            log.warning("ingest_json failed for a batch of %d (%s); retrying singly", len(run), exc)
            for message, value in zip(run, values, strict=True):
                out.extend(self._ingest_json(state, [message], [value]))
            return out
        out.add_changes(result.changes)
        rejected = result.rejected
        if rejected is not None and rejected.num_rows:
            rows = rejected.column("row").to_pylist()
            reasons = rejected.column("reason").to_pylist()
            for row, reason in zip(rows, reasons, strict=True):
                out.dead_letters.append(self._dead(run[int(row)], str(reason)))
        # Rejected messages were dead-lettered, not applied.
        out.applied += len(run) - (0 if rejected is None else rejected.num_rows)
        return out

    def _ingest_arrow(self, state: PartitionState, message: SourceMessage) -> Output:
        out = Output()
        assert message.value is not None
        try:
            table = read_arrow_ipc(message.value)
        except (pa.ArrowException, OSError, ValueError) as exc:
            out.dead_letters.append(self._dead(message, f"not a valid Arrow IPC message: {exc}"))
            return out
        try:
            if message.topic == self.settings.traits_topic:
                result = state.engine.update_traits_result(table)
            else:
                result = state.engine.ingest(table)
            out.add_changes(result.changes)
            rejected = result.rejected
            if rejected is not None and rejected.num_rows:
                for row, reason in zip(
                    rejected.column("row").to_pylist(),
                    rejected.column("reason").to_pylist(),
                    strict=True,
                ):
                    out.dead_letters.append(self._dead(message, str(reason), row=int(row)))
        except Exception as exc:  # noqa: BLE001 - a bad batch goes to the dead letters
            out.dead_letters.append(self._dead(message, _reason(exc)))
            return out
        out.applied += 1
        return out

    @staticmethod
    def _dead(message: SourceMessage, reason: str, row: int | None = None) -> DeadLetter:
        return DeadLetter(
            reason=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value or b"",
            row=row,
        )

    # -- time -------------------------------------------------------------------------

    def advance(self, targets: dict[int, datetime]) -> Output:
        """Move the clock of each listed partition forward; returns the time-driven changes."""
        out = Output()
        for p, target in targets.items():
            state = self.partitions.get(p)
            if state is None:
                continue
            clock = state.engine.clock
            if clock is not None and clock >= target:
                continue
            out.add_changes(state.engine.advance_to(target))
            state.dirty = True
        return out

    # -- checkpoints ------------------------------------------------------------------

    def due_checkpoints(self, force: bool = False) -> list[int]:
        """Partitions whose checkpoint should be written now (all dirty ones when forced)."""
        now = time.monotonic()
        s = self.settings
        return [
            p
            for p, state in self.partitions.items()
            if (
                state.dirty
                if force
                else state.checkpoint_due(now, s.checkpoint_interval, s.checkpoint_every)
            )
        ]

    def checkpoint(self, partitions: Iterable[int]) -> dict[tuple[str, int], int]:
        """Save the listed partitions; returns `(topic, partition) -> next offset` to commit.

        The caller must have flushed the producer first: a checkpoint claims that every
        change caused by the messages it covers has been published.
        """
        commits: dict[tuple[str, int], int] = {}
        now = time.monotonic()
        for p in partitions:
            state = self.partitions.get(p)
            if state is None:
                continue
            self._save(state, now)
            for topic, offset in state.resume_offsets(self._input_topics).items():
                commits[(topic, p)] = offset
        return commits

    def resume_offsets(self) -> dict[tuple[str, int], int]:
        """`(topic, partition) -> offset` where each owned partition's last checkpoint ends."""
        return {
            (topic, p): offset
            for p, state in self.partitions.items()
            for topic, offset in state.resume_offsets(self._input_topics).items()
        }

    def _save(self, state: PartitionState, now: float) -> None:
        self.store.save(state.engine, state.partition, state.checkpoint_offsets())
        state.checkpointed(now)

    # -- views ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Segment sizes over every partition this worker owns."""
        return merge_stats(state.engine.stats() for state in self.partitions.values())

    def profile(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's profile from whichever owned partition knows them, else None."""
        for state in self.partitions.values():
            for key in _customer_keys(customer_id):
                try:
                    return dict(state.engine.profile(key))
                except KeyError:
                    continue
        return None

    def clocks(self) -> dict[int, datetime | None]:
        return {p: state.engine.clock for p, state in self.partitions.items()}


def _customer_keys(customer_id: str) -> list[Any]:
    # Ids ingested as int64 are looked up as ints; a URL path only carries text.
    keys: list[Any] = [customer_id]
    if customer_id.lstrip("-").isdigit():
        keys.append(int(customer_id))
    return keys


def _default_engine(rules: str) -> Engine:
    from segstream import Engine

    return Engine(rules)
