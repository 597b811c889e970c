"""The worker's Prometheus metrics (`GET /metrics`), in a registry of its own.

Counters move as batches are handled; gauges that describe the present (consumer lag,
checkpoint age) are set when scraped, from the partitions' state. Names follow
Prometheus conventions: counters end in `_total`, durations are in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from segstream.service.codec import DeadLetter
    from segstream.service.partition_state import PartitionState

#: Batch latency buckets (seconds): a fetch takes from a millisecond to a few seconds.
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Content type of the text exposition format (aiohttp adds no charset to a bytes body;
#: the format is UTF-8 by definition).
CONTENT_TYPE = "text/plain; version=0.0.4"


class WorkerMetrics:
    """Every metric a worker exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.applied = Counter(
            "segstream_messages_applied",
            "Input messages applied to the partition's engine",
            ["partition"],
            registry=r,
        )
        self.rejected = Counter(
            "segstream_messages_rejected",
            "Input messages (or Arrow rows) sent to the dead-letter topic",
            ["topic", "partition"],
            registry=r,
        )
        self.changes = Counter(
            "segstream_changes",
            "Membership changes published, by segment or lifecycle and cause",
            ["segment", "cause"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "segstream_batch_seconds",
            "Time to apply one fetch and queue the changes it caused",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "segstream_consumer_lag",
            "Messages in an input partition not yet applied (high watermark - next offset)",
            ["topic", "partition"],
            registry=r,
        )
        self.checkpoint_age = Gauge(
            "segstream_checkpoint_age_seconds",
            "Seconds since the partition's last checkpoint",
            ["partition"],
            registry=r,
        )
        self.rules = Gauge(
            "segstream_rules_info",
            "The rule set in force, by fingerprint (always 1)",
            ["fingerprint"],
            registry=r,
        )

    def count_batch(
        self,
        applied: Mapping[int, int],
        changes: Iterable[pa.Table],
        dead_letters: Iterable[DeadLetter],
    ) -> None:
        for partition, n in applied.items():
            if n:
                self.applied.labels(partition=str(partition)).inc(n)
        for table in changes:
            if not table.num_rows:
                continue
            counts = table.group_by(["segment", "cause"]).aggregate([("segment", "count")])
            for row in counts.to_pylist():
                self.changes.labels(segment=row["segment"], cause=row["cause"]).inc(
                    row["segment_count"]
                )
        for letter in dead_letters:
            self.rejected.labels(topic=letter.topic, partition=str(letter.partition)).inc()

    def render(
        self,
        partitions: Mapping[int, PartitionState],
        topics: Iterable[str],
        highwater: Callable[[str, int], int | None],
        fingerprint: str,
    ) -> bytes:
        """The exposition text, with the present-state gauges set from `partitions`."""
        now = time.monotonic()
        self.lag.clear()
        self.checkpoint_age.clear()
        topics = list(topics)
        for p, state in partitions.items():
            self.checkpoint_age.labels(partition=str(p)).set(now - state.last_checkpoint)
            for topic in topics:
                high = highwater(topic, p)
                if high is None:
                    continue
                done = state.applied.get(topic, -1) + 1
                self.lag.labels(topic=topic, partition=str(p)).set(max(0, high - done))
        self.rules.clear()
        self.rules.labels(fingerprint=fingerprint).set(1)
        return bytes(generate_latest(self.registry))
