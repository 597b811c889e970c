"""Creating the service's topics before a worker or producer uses them.

The broker would auto-create a topic on first use, but with its default of one partition,
which caps the consumer group at one useful worker. Input topics must also be
co-partitioned (same partition count) so that a customer's events and traits reach the
same engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def bootstrap_servers(broker: str) -> str:
    """Faust broker URL(s) (`kafka://h:p;kafka://h2:p`) to a Kafka bootstrap list (`h:p,h2:p`)."""
    hosts = []
    for part in broker.replace(",", ";").split(";"):
        part = part.strip()
        if part:
            hosts.append(part.split("://", 1)[-1].rstrip("/"))
    return ",".join(hosts)


async def ensure_topics(
    broker: str, topics: Iterable[str], partitions: int, timeout: float = 30.0
) -> dict[str, int]:
    """Create the missing `topics` with `partitions` partitions; returns each one's partition count.

    Existing topics are left as they are: their partition count is the operator's choice.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(broker), request_timeout_ms=int(timeout * 1000)
    )
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
                log.info("created topics %s with %d partitions", missing, partitions)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
        counts: dict[str, int] = {}
        deadline = asyncio.get_running_loop().time() + timeout
        # Metadata of a topic just created can lag behind the create call.
        while True:
            described = await admin.describe_topics(wanted)
            for topic in described:
                if topic.get("error_code", 0) == 0 and topic.get("partitions"):
                    counts[topic["topic"]] = len(topic["partitions"])
            if len(counts) == len(wanted) or asyncio.get_running_loop().time() > deadline:
                return counts
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
