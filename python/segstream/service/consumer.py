"""The input side of a worker: a batch Kafka consumer whose offsets come from checkpoints.

Faust's agents hand a stream one message at a time through several asyncio tasks each,
which costs about as much per message as the engine spends on a whole batch. The worker
therefore reads its input topics with aiokafka's `getmany` (thousands of records per
call, decoded in C) inside the Faust app, and gives each batch to the engine at once.

Offsets are stored outside Kafka, in the checkpoints: on assignment, every partition is
sought to one past its checkpoint (or to the beginning without one), the way aiokafka
documents for local state. Kafka's committed offsets are only set after a checkpoint, so
that lag monitors (`kafka-consumer-groups`) show where the service stands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from mode import Service

from segstream.service.settings import ServiceSettings
from segstream.service.topics import bootstrap_servers

log = logging.getLogger(__name__)

#: Called with the partition numbers (of the input topics) revoked or assigned.
RebalanceHandler = Callable[[set[int]], Awaitable[dict[tuple[str, int], int] | None]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.owner.on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.owner.on_assigned({tp.partition for tp in assigned})


class BatchConsumer(Service):
    """Reads the input topics in batches and hands them to `handle`.

    `generation` changes on every rebalance: a batch fetched before a rebalance is
    dropped, since the partitions it came from were sought again (to their checkpoint)
    and will deliver it anew.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        handle: Callable[[Mapping[Any, Sequence[Any]], int], Awaitable[None]],
        on_revoked: RebalanceHandler,
        on_assigned: RebalanceHandler,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topics = (settings.events_topic, settings.traits_topic)
        self._handle = handle
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self.generation = 0
        self.consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(s.broker),
            group_id=s.app_id,
            client_id=f"segstream-{s.app_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(s.session_timeout * 1000 / 4),
            # A slow batch must not cost the partitions: the engine holds the loop
            # for at most one batch, far less than this.
            max_poll_interval_ms=300_000,
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=64 << 20,
        )
        self.consumer.subscribe(list(self.topics), listener=_Listener(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group: the others take over at once

    async def on_revoked(self, partitions: set[int]) -> None:
        self.generation += 1
        await self._on_revoked(partitions)

    async def on_assigned(self, partitions: set[int]) -> None:
        self.generation += 1
        resume = await self._on_assigned(partitions) or {}
        assert self.consumer is not None
        for (topic, p), offset in resume.items():
            tp = TopicPartition(topic, p)
            if offset > 0:
                self.consumer.seek(tp, offset)
            else:
                await self.consumer.seek_to_beginning(tp)

    @Service.task
    async def _consume(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        s = self.settings
        timeout_ms = max(1, int(s.batch_within * 1000))
        while not self.should_stop:
            generation = self.generation
            try:
                batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=s.batch_size)
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                # Broker restarts and leader moves: aiokafka reconnects by itself.
                log.warning("fetch failed, retrying: %r", exc)
                await asyncio.sleep(0.5)
                continue
            if any(batch.values()):
                # Grouped by topic partition, as fetched: the processor takes it so.
                await self._handle(batch, generation)

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Set Kafka's committed offsets (for lag monitoring; checkpoints are the truth)."""
        if self.consumer is None or not offsets:
            return
        assigned = self.consumer.assignment()
        wanted = {
            TopicPartition(topic, p): offset
            for (topic, p), offset in offsets.items()
            if TopicPartition(topic, p) in assigned
        }
        if not wanted:
            return
        try:
            await self.consumer.commit(wanted)
        except KafkaError as exc:
            log.warning("could not commit offsets %s: %r", wanted, exc)

    def highwater(self, topic: str, partition: int) -> int | None:
        if self.consumer is None:
            return None
        result: int | None = self.consumer.highwater(TopicPartition(topic, partition))
        return result
