"""The Faust app: consumes events and traits, segments them, publishes membership changes.

Faust runs the worker: its lifecycle and command line, the producer, the timers and the
HTTP views. Input is read by `consumer.BatchConsumer` in large batches (Faust's
per-message agents would cost more than the engine does), and what happens to a batch
is in `processor.py`. What keeps the state exact under crashes and rebalances:

- a checkpoint holds a partition's engine state and the last offsets applied to it;
  on assignment each partition resumes one past its checkpoint, and messages at or
  below it are skipped, so a replay counts nothing twice and loses nothing;
- a checkpoint is written only after the producer has flushed, so every change caused
  by the messages it covers is already on the output topic.

One asyncio lock orders batches, clock ticks, checkpoints and rebalances: the engine
state never changes while it is being saved.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import faust
from faust.app.base import BootStrategy
from faust.web import Request, Response, View

from segstream.service.access import bearer_allows, customer_id_problem
from segstream.service.checkpoints import CheckpointStore
from segstream.service.clock import tick_targets
from segstream.service.consumer import BatchConsumer
from segstream.service.metrics import CONTENT_TYPE, WorkerMetrics
from segstream.service.processor import Output, Processor
from segstream.service.publish import ChangePublisher
from segstream.service.settings import ServiceSettings
from segstream.service.topics import ensure_topics

if TYPE_CHECKING:
    from segstream import Engine

log = logging.getLogger(__name__)


class _Boot(BootStrategy):
    # Faust's own consumer would join a group and subscribe to nothing we use; the
    # BatchConsumer does the consuming.
    enable_kafka_consumer = False


class SegstreamApp(faust.App):
    """A Faust app that creates the service's topics first and checkpoints on a clean stop."""

    BootStrategy = _Boot
    segstream_service: SegmentService

    async def on_first_start(self) -> None:
        await super().on_first_start()
        s = self.segstream_service.settings
        # Left to the broker, a missing topic would be auto-created with one partition.
        counts = await ensure_topics(
            s.broker,
            [s.events_topic, s.traits_topic, s.changes_topic, s.dead_letter_topic],
            s.partitions,
        )
        if counts.get(s.events_topic) != counts.get(s.traits_topic):
            raise RuntimeError(
                f"topics {s.events_topic!r} and {s.traits_topic!r} must have the same number "
                f"of partitions (they have {counts.get(s.events_topic)} and "
                f"{counts.get(s.traits_topic)}): a customer's events and traits must meet "
                "in one partition"
            )

    async def on_stop(self) -> None:
        # A clean stop leaves nothing to replay: checkpoint while the consumer (for the
        # offset commit) and the producer (for the flush) still run.
        try:
            await self.segstream_service.checkpoint(force=True, final=True)
        except Exception as exc:  # noqa: BLE001 - the last checkpoint still stands
            log.warning("final checkpoint failed: %r", exc)
        await super().on_stop()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_response(
    view: View, body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    data = json.dumps(body, default=_jsonable, separators=(",", ":")).encode()
    return view.bytes(data, content_type="application/json", status=status, headers=headers)


class SegmentService:
    """One worker: the Faust app, its batch consumer, and the partitions it owns."""

    def __init__(
        self,
        settings: ServiceSettings,
        engine_factory: Callable[[str], Engine] | None = None,
    ) -> None:
        self.settings = settings
        self.store = CheckpointStore(settings.state_dir, settings.app_id)
        self.processor = Processor(settings, self.store, engine_factory)
        self.processor.check_rules()
        self.input_topics = (settings.events_topic, settings.traits_topic)
        self.started = time.time()
        self.counters = {"messages": 0, "applied": 0, "changes": 0, "dead_letters": 0}
        self._lock = asyncio.Lock()
        self._closing = False
        self.changes = ChangePublisher(settings.changes_topic)
        self.metrics = WorkerMetrics()
        self.app = self._create_app()
        self.consumer = BatchConsumer(
            settings,
            handle=self.handle,
            on_revoked=self._on_revoked,
            on_assigned=self._on_assigned,
            beacon=self.app.beacon,
        )
        self._wire()

    # -- construction -----------------------------------------------------------------

    def _create_app(self) -> SegstreamApp:
        s = self.settings
        # Faust wants a data dir for table stores; this app keeps its state in checkpoints.
        datadir = os.path.join(tempfile.gettempdir(), "segstream-faust", s.app_id)
        os.makedirs(os.path.dirname(datadir), exist_ok=True)
        app = SegstreamApp(
            s.app_id,
            broker=s.broker,
            datadir=datadir,
            store="memory://",
            web_port=s.web_port,
            web_bind=s.web_bind,
            web_host=s.web_bind,
            producer_linger=0.005,
            producer_max_batch_size=1 << 20,
            producer_max_request_size=2 << 20,
        )
        app.segstream_service = self
        return app

    def _wire(self) -> None:
        s = self.settings
        app = self.app
        app.service(self.consumer)  # type: ignore[arg-type]
        app.timer(s.tick_interval, name=f"{s.app_id}.tick")(self.tick)
        app.timer(min(1.0, s.checkpoint_interval), name=f"{s.app_id}.checkpoint")(
            self.periodic_checkpoint
        )
        self._add_views()

    def _add_views(self) -> None:
        service = self

        def refused(view: View, request: Request) -> Response | None:
            """A 401 response unless the request carries the API token (when one is set)."""
            if bearer_allows(request.headers.get("Authorization"), service.settings.api_token):
                return None
            return _json_response(
                view,
                {"error": "this view needs the header `Authorization: Bearer <api token>`"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="segstream"'},
            )

        @self.app.page("/segments")
        class Segments(View):
            async def get(self, request: Request) -> Response:
                return refused(self, request) or _json_response(self, service.processor.stats())

        @self.app.page("/customers/{customer_id}")
        class Customer(View):
            async def get(self, request: Request, customer_id: str) -> Response:
                denied = refused(self, request)
                if denied is not None:
                    return denied
                problem = customer_id_problem(customer_id)
                if problem is not None:
                    return _json_response(self, {"error": problem}, status=400)
                profile = service.processor.profile(customer_id)
                if profile is None:
                    return _json_response(
                        self,
                        {"error": f"customer {customer_id!r} is unknown to this worker"},
                        status=404,
                    )
                return _json_response(self, profile)

        @self.app.page("/metrics")
        class Metrics(View):
            async def get(self, request: Request) -> Response:
                denied = refused(self, request)
                if denied is not None:
                    return denied
                body = service.metrics.render(
                    service.processor.partitions,
                    service.input_topics,
                    service.consumer.highwater,
                    service.processor.check_rules(),
                )
                return self.bytes(body, content_type=CONTENT_TYPE)

        @self.app.page("/health")
        class Health(View):
            async def get(self, request: Request) -> Response:
                # Open to all: load balancers and orchestrators probe it without secrets.
                return _json_response(self, service.health())

    # -- processing -------------------------------------------------------------------

    async def handle(self, fetched: Mapping[Any, Sequence[Any]], generation: int) -> None:
        """Apply one fetch (records by topic partition) and publish what it caused.

        Checkpoints if a partition is due.
        """
        async with self._lock:
            if self._closing or generation != self.consumer.generation:
                # Fetched before a rebalance: the partitions were sought back to their
                # checkpoints and deliver these messages again.
                return
            started = time.perf_counter()
            out = self.processor.process_fetched(fetched.items())
            self.counters["messages"] += sum(len(records) for records in fetched.values())
            self.counters["applied"] += out.applied
            await self.publish(out)
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        if any(
            state.pending >= self.settings.checkpoint_every
            for state in self.processor.partitions.values()
        ):
            await self.checkpoint()

    async def publish(self, out: Output) -> None:
        """Hand changes and dead letters to the producer (buffered; flushed before checkpoints)."""
        self.metrics.count_batch(out.applied_by_partition, out.changes, out.dead_letters)
        producer = self.app.producer
        # Faust's producer wraps an aiokafka one; its batch API is what lets a whole
        # table of changes go out without a coroutine and a future per change.
        self.counters["changes"] += await self.changes.publish(
            producer._ensure_producer(),  # type: ignore[attr-defined]
            out.changes,
        )
        for letter in out.dead_letters:
            letter_key, letter_value = letter.encode()
            log.warning(
                "dead letter %s/%d@%d: %s",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
            )
            await producer.send(
                self.settings.dead_letter_topic, letter_key, letter_value, None, None, None
            )
            self.counters["dead_letters"] += 1

    async def tick(self) -> None:
        """Advance engine clocks (wall clock or watermark) and publish time-driven changes."""
        async with self._lock:
            targets = tick_targets(self.settings.clock, self.processor.clocks(), self._caught_up)
            if targets:
                await self.publish(self.processor.advance(targets))

    def _caught_up(self, partition: int) -> bool:
        state = self.processor.partitions.get(partition)
        if state is None:
            return False
        for topic in self.input_topics:
            highwater = self.consumer.highwater(topic, partition)
            if highwater is None:
                return False
            if highwater > 0 and state.applied.get(topic, -1) + 1 < highwater:
                return False
        return True

    # -- checkpoints ------------------------------------------------------------------

    async def periodic_checkpoint(self) -> None:
        await self.checkpoint()

    async def checkpoint(self, force: bool = False, final: bool = False) -> None:
        """Save the partitions that are due and move Kafka's committed offsets to them."""
        async with self._lock:
            self._closing = self._closing or final
            due = self.processor.due_checkpoints(force)
            if not due:
                return
            await self.app.producer.flush()
            await self.changes.settle()
            commits = self.processor.checkpoint(due)
        await self.consumer.commit(commits)

    # -- rebalancing ------------------------------------------------------------------

    async def _on_revoked(self, partitions: set[int]) -> None:
        if not partitions:
            return
        async with self._lock:
            await self.app.producer.flush()
            await self.changes.settle()
            self.processor.revoke(partitions)
        log.info("revoked partitions %s (checkpointed)", sorted(partitions))

    async def _on_assigned(self, partitions: set[int]) -> dict[tuple[str, int], int]:
        """Load the partitions' checkpoints; returns where each input partition resumes."""
        async with self._lock:
            # Partitions kept through an eager rebalance were revoked and saved; reload all
            # so a partition another worker owned in between comes back with its state.
            self.processor.revoke(set(self.processor.partitions) - partitions)
            await self.publish(self.processor.assign(partitions))
            resume = self.processor.resume_offsets()
        log.info("assigned partitions %s", sorted(partitions))
        return resume

    # -- views ------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "app_id": self.settings.app_id,
            "clock_mode": self.settings.clock,
            "partitions": {
                str(p): {
                    "clock": state.engine.clock,
                    "offsets": state.applied,
                    "pending": state.pending,
                }
                for p, state in sorted(self.processor.partitions.items())
            },
            "uptime_s": round(time.time() - self.started, 1),
            **self.counters,
        }


def create_app(
    settings: ServiceSettings, engine_factory: Callable[[str], Engine] | None = None
) -> faust.App:
    """A configured Faust app for `settings` (run it with `app.Worker(...)` or the faust CLI)."""
    return SegmentService(settings, engine_factory).app
