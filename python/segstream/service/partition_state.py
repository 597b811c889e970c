"""The state a worker holds for one assigned Kafka partition: its engine and applied offsets.

Input topics are co-partitioned by customer id, so partition `p` of the events topic and
partition `p` of the traits topic feed the same engine. The offsets recorded here are
the last ones applied to the engine; they travel with the engine in its checkpoint and
make replays after a crash or rebalance idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segstream import Engine


def offset_key(topic: str, partition: int) -> str:
    """The key of a source in a checkpoint's offsets: `"<topic>/<partition>"`."""
    return f"{topic}/{partition}"


@dataclass
class PartitionState:
    """One partition's engine plus the bookkeeping that makes checkpoints exact."""

    partition: int
    engine: Engine
    #: topic -> offset of the last message applied to `engine` (absent: none yet).
    applied: dict[str, int] = field(default_factory=dict)
    #: topic -> offsets of the last checkpoint (what a restart resumes after).
    saved: dict[str, int] = field(default_factory=dict)
    #: Messages applied since the last checkpoint.
    pending: int = 0
    #: State changed (events or clock) since the last checkpoint.
    dirty: bool = False
    last_checkpoint: float = field(default_factory=time.monotonic)

    @classmethod
    def restore(cls, partition: int, engine: Engine, topics: Iterable[str]) -> PartitionState:
        """Wrap a loaded engine, taking the applied offsets from its checkpoint metadata."""
        saved: Mapping[str, Any] = engine.source_offsets or {}
        applied = {
            topic: int(saved[offset_key(topic, partition)])
            for topic in topics
            if offset_key(topic, partition) in saved
        }
        return cls(partition=partition, engine=engine, applied=applied, saved=dict(applied))

    def seen(self, topic: str, offset: int) -> bool:
        """True when the message at `offset` is already part of the state (a replay)."""
        last = self.applied.get(topic)
        return last is not None and offset <= last

    def mark_applied(self, topic: str, offset: int) -> None:
        # max: within a batch, a dead-lettered message can be marked before the JSON run
        # that precedes it is flushed to the engine.
        last = self.applied.get(topic)
        self.applied[topic] = offset if last is None else max(last, offset)
        self.pending += 1
        self.dirty = True

    def mark_applied_through(self, topic: str, offset: int, count: int) -> None:
        """Record `count` messages of `topic` applied, the last at `offset`."""
        last = self.applied.get(topic)
        self.applied[topic] = offset if last is None else max(last, offset)
        self.pending += count
        self.dirty = True

    def checkpoint_offsets(self) -> dict[str, int]:
        """The offsets to store with a checkpoint of the current state."""
        return {offset_key(topic, self.partition): off for topic, off in self.applied.items()}

    def resume_offsets(self, topics: Iterable[str]) -> dict[str, int]:
        """topic -> where a restart must resume reading: one past the last checkpoint.

        In Kafka's convention (a committed offset is the next one to read); 0 for a
        topic the checkpoint has not reached.
        """
        return {topic: self.saved.get(topic, -1) + 1 for topic in topics}

    def checkpoint_due(self, now: float, interval: float, every: int) -> bool:
        return self.dirty and (self.pending >= every or now - self.last_checkpoint >= interval)

    def checkpointed(self, now: float) -> None:
        self.saved = dict(self.applied)
        self.pending = 0
        self.dirty = False
        self.last_checkpoint = now


def merge_stats(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up `engine.stats()` of several partitions: counts add, lifecycle stages add per stage."""
    total: dict[str, Any] = {}
    for stats in parts:
        for name, value in stats.items():
            if isinstance(value, Mapping):
                stages = total.setdefault(name, {})
                for stage, count in value.items():
                    stages[stage] = stages.get(stage, 0) + int(count)
            else:
                total[name] = total.get(name, 0) + int(value)
    return total
