"""The Kafka clients' own ceilings on the benchmark's backlog: consume and count, nothing else.

Run by `stream_throughput.py` in a subprocess, one consumer group per run:

    python benches/stream_ceilings.py aiokafka|confluent BOOTSTRAP TOPIC GROUP EXPECTED

Prints one JSON line: how many messages arrived, and the messages and seconds from the
first batch to the last (the first batch starts the clock, so it is not counted).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

#: Give up when no message arrived for this long before EXPECTED were seen.
IDLE_TIMEOUT_S = 30.0


class Clock:
    """Counts messages and times them from the first batch to the last."""

    def __init__(self) -> None:
        self.count = 0
        self.first_batch = 0
        self.started = 0.0
        self.last = 0.0

    def batch(self, n: int) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.started, self.first_batch = now, n
        self.count += n
        self.last = now

    def report(self) -> dict[str, float]:
        return {
            "count": self.count,
            "timed": self.count - self.first_batch,
            "seconds": self.last - self.started,
        }


async def count_aiokafka(bootstrap: str, topic: str, group: str, expected: int) -> Clock:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    clock = Clock()
    idle_since = time.perf_counter()
    try:
        while clock.count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            n = sum(len(records) for records in batches.values())
            if n:
                clock.batch(n)
                idle_since = time.perf_counter()
            elif time.perf_counter() - idle_since > IDLE_TIMEOUT_S:
                break
    finally:
        await consumer.stop()
    return clock


def count_confluent(bootstrap: str, topic: str, group: str, expected: int) -> Clock:
    from confluent_kafka import Consumer, KafkaException

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.subscribe([topic])
    clock = Clock()
    idle_since = time.perf_counter()
    try:
        while clock.count < expected:
            messages = consumer.consume(10_000, timeout=1.0)
            for m in messages:
                if m.error() is not None:
                    raise KafkaException(m.error())
            if messages:
                clock.batch(len(messages))
                idle_since = time.perf_counter()
            elif time.perf_counter() - idle_since > IDLE_TIMEOUT_S:
                break
    finally:
        consumer.close()
    return clock


def main(argv: list[str]) -> int:
    client, bootstrap, topic, group, expected = argv
    if client == "aiokafka":
        clock = asyncio.run(count_aiokafka(bootstrap, topic, group, int(expected)))
    elif client == "confluent":
        clock = count_confluent(bootstrap, topic, group, int(expected))
    else:
        raise SystemExit(f"unknown client {client!r}: aiokafka or confluent")
    print(json.dumps(clock.report()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
