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

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


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
    if create_topic:
        await ensure_topics(broker, [topic], partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker),
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=2 << 20,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
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
