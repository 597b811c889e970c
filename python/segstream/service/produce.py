"""Sending a stream of event messages to Kafka at a steady rate (`segstream produce`).

Messages are keyed by customer id, as the service requires: Kafka's default partitioner
then sends all of a customer's events to one partition, and so to one engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from aiokafka import AIOKafkaProducer

from segstream.service.topics import bootstrap_servers, ensure_topics

log = logging.getLogger(__name__)

#: How many sends are in flight before the producer waits for their acknowledgements.
MAX_IN_FLIGHT = 5000


def customer_key(value: bytes) -> bytes | None:
    """The customer id of a JSON event message, in either form of docs/api.md, as the key.

    None for a message that has none (it still goes out: the service dead-letters it).
    """
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for field in ("customer_id", "userId", "anonymousId"):
        cid = obj.get(field)
        if cid is not None and not isinstance(cid, dict | list):
            return str(cid).encode()
    return None


@dataclass
class ProduceReport:
    messages: int
    seconds: float
    #: Events sent (more than `messages` when a message carries many, as Arrow IPC does).
    events: int = 0

    @property
    def rate(self) -> float:
        """Events a second."""
        return (self.events or self.messages) / self.seconds if self.seconds > 0 else 0.0


async def _started_producer(
    broker: str, topic: str, partitions: int, create_topic: bool, max_request_size: int
) -> AIOKafkaProducer:
    """An idempotent producer, started, for `topic` (created first if asked and missing)."""
    if create_topic:
        await ensure_topics(broker, [topic], partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker),
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=max_request_size,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    return producer


async def produce(
    broker: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
    rate: float | None = None,
    partitions: int = 4,
    create_topic: bool = True,
) -> ProduceReport:
    """Send `(key, value)` messages to `topic`, at most `rate` a second (None: no limit).

    Waits until the broker has acknowledged every message before returning.
    """
    producer = await _started_producer(broker, topic, partitions, create_topic, 2 << 20)
    started = time.perf_counter()
    sent = 0
    in_flight: list[asyncio.Future[object]] = []
    try:
        for key, value in messages:
            if rate:
                # Pace against the start time, not per message: sleeping per message
                # cannot reach high rates, and this catches up after a slow send.
                ahead = sent / rate - (time.perf_counter() - started)
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            in_flight.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(in_flight) >= MAX_IN_FLIGHT:
                await asyncio.gather(*in_flight)
                in_flight.clear()
        await asyncio.gather(*in_flight)
    finally:
        await producer.stop()
    return ProduceReport(messages=sent, seconds=time.perf_counter() - started)


def keyed(values: Iterable[bytes]) -> Iterable[tuple[bytes | None, bytes]]:
    """Pair each JSON message with its customer key."""
    for value in values:
        yield customer_key(value), value


async def produce_arrow(
    broker: str,
    topic: str,
    batches: Iterable[pa.RecordBatch],
    rows_per_message: int = 2_000,
    partitions: int = 4,
    create_topic: bool = True,
) -> ProduceReport:
    """Send events as Arrow IPC messages of up to `rows_per_message` rows each.

    Every message holds rows of one partition only: the rows are split by the partition
    Kafka's default partitioner gives their `customer_id`, so each customer's events reach
    the engine that a keyed JSON message would (the service requires that).
    """
    import pyarrow.compute as pc

    from segstream._segstream import partitions_of
    from segstream.service.codec import write_arrow_ipc

    if rows_per_message < 1:
        raise ValueError(f"rows_per_message must be at least 1, got {rows_per_message}")
    producer = await _started_producer(broker, topic, partitions, create_topic, 8 << 20)
    # Route by the topic's real partition count, not the one asked for at creation.
    partitions = len(await producer.partitions_for(topic))
    started = time.perf_counter()
    events = 0
    messages = 0
    in_flight: list[asyncio.Future[Any]] = []
    try:
        for batch in batches:
            parts = partitions_of(batch, "customer_id", partitions)
            for p in range(partitions):
                rows = batch.filter(pc.equal(parts, p))
                for start in range(0, rows.num_rows, rows_per_message):
                    chunk = rows.slice(start, rows_per_message)
                    value = write_arrow_ipc(chunk)
                    in_flight.append(await producer.send(topic, value, partition=p))
                    events += chunk.num_rows
                    messages += 1
            if len(in_flight) >= 64:
                await asyncio.gather(*in_flight)
                in_flight.clear()
        await asyncio.gather(*in_flight)
    finally:
        await producer.stop()
    return ProduceReport(messages=messages, seconds=time.perf_counter() - started, events=events)
