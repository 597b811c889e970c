"""The Faust service against a real Kafka broker: exactness, crashes, scale-out, bad input, time.

Every test uses its own topics and consumer group, runs workers as subprocesses of
`segstream worker`, and compares what the service ends with to `Engine.ingest` over the
same events in one go. The broker is started by `scripts/kafka.sh` on a free port unless
one already answers on 127.0.0.1:$KAFKA_PORT (9092 by default).
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from kafka_harness import (
    Broker,
    Topics,
    Worker,
    partition_of,
    port_open,
    read_json,
    run,
    send_messages,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

segstream = pytest.importorskip("segstream")
pytest.importorskip("faust")
from segstream import Engine  # noqa: E402
from segstream.generate import json_messages, purchase_events, traits_table  # noqa: E402
from segstream.service.codec import write_arrow_ipc  # noqa: E402
from segstream.service.produce import produce_arrow  # noqa: E402
from segstream.service.topics import ensure_topics  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

PARTITIONS = 4

RULES = """
currency_scale: 2
traits:
  industry: string
  company_size: int
  newsletter: bool
segments:
  - name: dormant
    rule: orders >= 2 AND last_purchase_at < now() - INTERVAL '90 days'
  - name: big_spender
    rule: ltv >= 500
  - name: browser
    rule: events('page_view', within => INTERVAL '30 days') >= 5 AND orders <= 1
  - name: kitchen_no_tableware
    rule: has_category('kitchen') AND NOT has_category('tableware')
  - name: trade_buyer
    rule: industry IN ('manufacturing', 'wholesale', 'logistics') AND company_size >= 100
lifecycles:
  - name: vip_tier
    stages:
      - {name: gold, rule: ltv >= 2000}
      - {name: silver, rule: ltv >= 800}
      - {name: bronze, rule: ltv >= 200}
      - {name: regular, rule: orders >= 1}
"""
SEGMENTS = ("dormant", "big_spender", "browser", "kitchen_no_tableware", "trade_buyer")
LIFECYCLES = {"vip_tier": ("gold", "silver", "bronze", "regular")}

Memberships = dict[str, set[Any]]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """The broker of this module: an existing one on $KAFKA_PORT, else one started here."""
    port = int(os.environ.get("KAFKA_PORT", "9092"))
    if port_open(port):
        yield Broker(port=port, controller_port=port + 1, owned=False)
        return
    started = Broker.start_new()
    try:
        yield started
    finally:
        started.clean()


@pytest.fixture()
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture()
def topics(broker: Broker) -> Topics:
    t = Topics(f"t{uuid.uuid4().hex[:10]}")
    run(
        ensure_topics(
            broker.url, [t.events, t.traits, t.changes, t.dead_letters], partitions=PARTITIONS
        )
    )
    return t


@pytest.fixture()
def workers(
    broker: Broker, rules_path: Path, topics: Topics, tmp_path: Path
) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(broker, rules_path, topics, tmp_path)
    try:
        yield factory
    finally:
        factory.kill_all()


class WorkerFactory:
    """Starts workers of one test (same group and state dir) and kills them all at the end."""

    def __init__(self, broker: Broker, rules: Path, topics: Topics, tmp: Path) -> None:
        self.broker, self.rules, self.topics = broker, rules, topics
        self.state_dir = tmp / "state"
        self.tmp = tmp
        self.started: list[Worker] = []

    def start(self, clock: str = "watermark", *extra: str) -> Worker:
        n = len(self.started)
        worker = Worker(
            broker=self.broker,
            rules=self.rules,
            topics=self.topics,
            state_dir=self.state_dir,
            log_path=self.tmp / f"worker-{n}.log",
            clock=clock,
            partitions=PARTITIONS,
            extra=extra,
        )
        self.started.append(worker.start())
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


# -- inputs and references -----------------------------------------------------------------


def events_table(customers: int, events: int, seed: int) -> pa.Table:
    return pa.Table.from_batches(list(purchase_events(customers, events, seed=seed)))


def event_messages(customers: int, events: int, seed: int) -> list[bytes]:
    """The JSON forms (flat and Segment spec) of exactly the rows of `events_table`."""
    return list(json_messages(customers, events, seed))


def key_of(value: bytes) -> bytes:
    obj = json.loads(value)
    return str(obj.get("customer_id", obj.get("userId"))).encode()


def keyed_json(values: Iterable[bytes]) -> Iterator[tuple[bytes | None, bytes, int | None]]:
    for value in values:
        yield key_of(value), value, None


def ipc_by_partition(
    table: pa.Table, chunk: int = 250
) -> Iterator[tuple[bytes | None, bytes, int | None]]:
    """Arrow IPC messages, each holding rows of one partition only (as a keyed topic needs)."""
    ids = table.column("customer_id").to_pylist()
    parts = pa.array([partition_of(str(c).encode(), PARTITIONS) for c in ids])
    for p in range(PARTITIONS):
        rows = table.filter(pc.equal(parts, p))
        for start in range(0, rows.num_rows, chunk):
            piece = rows.slice(start, chunk)
            yield None, write_arrow_ipc(piece), p


def memberships(engines: Iterable[Engine]) -> Memberships:
    """segment -> member ids, and `lifecycle.stage` -> ids, over several engines."""
    out: Memberships = defaultdict(set)
    for engine in engines:
        for name in SEGMENTS:
            out[name] |= set(engine.members(name).to_pylist())
        for lifecycle, stages in LIFECYCLES.items():
            for stage in stages:
                key = f"{lifecycle}.{stage}"
                out[key] |= set(engine.members(key).to_pylist())
    return {k: v for k, v in out.items() if v}


def replay_changes(changes: list[dict[str, Any]]) -> Memberships:
    """Memberships a downstream consumer of the changes topic ends with (dedupe by change_id)."""
    seen: set[str] = set()
    segments: dict[str, set[Any]] = defaultdict(set)
    stage: dict[tuple[str, Any], str] = {}
    for change in changes:
        if change["change_id"] in seen:
            continue
        seen.add(change["change_id"])
        name, who = change["segment"], change["customer_id"]
        if name in LIFECYCLES:
            if change["to_stage"] is None:
                stage.pop((name, who), None)
            else:
                stage[(name, who)] = change["to_stage"]
        elif change["change"] == "enter":
            segments[name].add(who)
        else:
            segments[name].discard(who)
    out: Memberships = defaultdict(set, segments)
    for (name, who), st in stage.items():
        out[f"{name}.{st}"].add(who)
    return {k: v for k, v in out.items() if v}


def bulk_reference(events: pa.Table, traits: pa.Table | None = None) -> Engine:
    engine = Engine(RULES)
    if traits is not None:
        engine.update_traits(traits)
    engine.ingest(events)
    return engine


def service_engines(state_dir: Path, topics: Topics) -> list[Engine]:
    files = sorted((state_dir / topics.app_id).glob("partition-*.arrow"))
    assert len(files) == PARTITIONS, f"expected {PARTITIONS} checkpoints, found {files}"
    return [Engine.load(f) for f in files]


def assert_same(got: Memberships, want: Memberships, what: str) -> None:
    names = sorted(set(got) | set(want))
    diffs = {
        n: {"missing": sorted(want.get(n, set()) - got.get(n, set()))[:5],
            "extra": sorted(got.get(n, set()) - want.get(n, set()))[:5]}
        for n in names
        if got.get(n, set()) != want.get(n, set())
    }  # fmt: skip
    assert not diffs, f"{what} differ from the bulk result: {diffs}"


def wait_consumed(worker: Worker, expected_offsets: int, timeout: float = 120.0) -> None:
    """Until the worker's partitions have applied `expected_offsets` messages in all."""

    def done() -> bool:
        health = worker.health()
        if not health:
            return False
        total = sum(
            off + 1 for part in health["partitions"].values() for off in part["offsets"].values()
        )
        return total >= expected_offsets

    wait_until(done, timeout, interval=0.5, what=f"{expected_offsets} messages to be consumed")


def wait_clocks_equal(worker: Worker, clock_ms: int, timeout: float = 30.0) -> None:
    want = datetime.fromtimestamp(clock_ms / 1000, UTC).isoformat(timespec="milliseconds")
    want = want.replace("+00:00", "Z")

    def equal() -> bool:
        health = worker.health()
        return bool(health) and all(part["clock"] == want for part in health["partitions"].values())

    wait_until(equal, timeout, what=f"every partition clock at {want}")


# -- tests ---------------------------------------------------------------------------------


def test_end_to_end_every_input_form(workers: WorkerFactory, topics: Topics) -> None:
    """JSON (flat and Segment), Arrow IPC events, JSON and Arrow traits: same as bulk."""
    customers, n_events, seed = 300, 6000, 11
    table = events_table(customers, n_events, seed)
    messages = event_messages(customers, n_events, seed)
    assert len(messages) == table.num_rows
    traits = traits_table(customers, seed)
    trait_json = [m for m in json_messages(customers, 0, seed, traits=True)]
    assert len(trait_json) == customers

    bootstrap = workers.broker.bootstrap
    worker = workers.start("watermark")
    worker.wait_assigned(PARTITIONS)

    # A third of the events as Arrow IPC, the rest as JSON; half the traits each way.
    n_ipc = n_events // 3
    # The Arrow third goes through the project's producer, which splits rows by partition.
    report = run(
        produce_arrow(
            bootstrap, topics.events, table.slice(0, n_ipc).to_batches(), rows_per_message=250
        )
    )
    assert report.events == n_ipc and report.messages >= PARTITIONS
    sent = report.messages
    sent += run(send_messages(bootstrap, topics.events, keyed_json(messages[n_ipc:])))
    half = customers // 2
    sent += run(send_messages(bootstrap, topics.traits, keyed_json(trait_json[:half])))
    sent += run(send_messages(bootstrap, topics.traits, ipc_by_partition(traits.slice(half))))

    wait_consumed(worker, sent)
    reference = bulk_reference(table, traits)
    assert reference.clock_ms is not None
    wait_clocks_equal(worker, reference.clock_ms)

    # The live views agree with the bulk engine while the worker runs.
    status, sizes = worker.get("/segments")
    assert status == 200
    assert sizes == reference.stats()
    someone = table.column("customer_id")[0].as_py()
    status, profile = worker.get(f"/customers/{someone}")
    assert status == 200
    want_profile = reference.profile(someone)
    assert profile["orders"] == want_profile["orders"]
    assert sorted(profile["segments"]) == sorted(want_profile["segments"])
    assert profile["stages"] == want_profile["stages"]
    assert worker.get("/customers/nobody-at-all")[0] == 404

    assert worker.stop() == 0
    want = memberships([reference])
    assert_same(memberships(service_engines(workers.state_dir, topics)), want, "checkpoints")
    changes = read_json(bootstrap, topics.changes, min_count=1)
    assert changes and all(len(c["change_id"]) == 16 for c in changes)
    assert_same(replay_changes(changes), want, "replayed changes")
    assert read_json(bootstrap, topics.dead_letters, idle=0.5) == []


def _produce_in_background(
    bootstrap: str, topic: str, messages: list[bytes], rate: float
) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: run(send_messages(bootstrap, topic, keyed_json(messages), rate=rate)),
        daemon=True,
    )
    thread.start()
    return thread


def test_crash_recovery_is_exact(workers: WorkerFactory, topics: Topics) -> None:
    """kill -9 three times while events flow: the final state is still the bulk result."""
    customers, n_events, seed = 400, 9000, 12
    table = events_table(customers, n_events, seed)
    messages = event_messages(customers, n_events, seed)
    rng = random.Random(seed)
    bootstrap = workers.broker.bootstrap

    worker = workers.start()
    worker.wait_assigned(PARTITIONS)
    producer = _produce_in_background(bootstrap, topics.events, messages, rate=600.0)
    for _ in range(3):
        # Let it consume and checkpoint for a while, then kill it mid-stream.
        wait_until(lambda w=worker: (w.health() or {}).get("applied", 0) > 0, 60, what="progress")
        time.sleep(rng.uniform(0.5, 3.0))
        worker.kill(signal.SIGKILL)
        worker = workers.start()
        worker.wait_assigned(PARTITIONS)
    producer.join(timeout=120)
    assert not producer.is_alive()

    wait_consumed(worker, len(messages))
    reference = bulk_reference(table)
    wait_clocks_equal(worker, reference.clock_ms)
    assert worker.stop() == 0
    assert_same(
        memberships(service_engines(workers.state_dir, topics)),
        memberships([reference]),
        "checkpoints after three crashes",
    )


def test_scale_out_and_takeover(workers: WorkerFactory, topics: Topics) -> None:
    """Two workers share four partitions; one dies; the other takes over with correct state."""
    customers, n_events, seed = 400, 8000, 13
    table = events_table(customers, n_events, seed)
    messages = event_messages(customers, n_events, seed)
    bootstrap = workers.broker.bootstrap

    first = workers.start()
    first.wait_assigned(PARTITIONS)
    second = workers.start()
    wait_until(
        lambda: len(first.owned()) == 2 and len(second.owned()) == 2,
        60,
        what="the partitions to be split two and two",
    )
    assert first.owned() | second.owned() == set(range(PARTITIONS))

    producer = _produce_in_background(bootstrap, topics.events, messages, rate=1500.0)
    wait_until(lambda: (second.health() or {}).get("applied", 0) > 200, 60, what="progress")
    second.kill(signal.SIGKILL)
    first.wait_assigned(PARTITIONS, timeout=60)
    producer.join(timeout=120)
    assert not producer.is_alive()

    wait_consumed(first, len(messages))
    reference = bulk_reference(table)
    wait_clocks_equal(first, reference.clock_ms)
    status, sizes = first.get("/segments")
    assert status == 200 and sizes == reference.stats()
    assert first.stop() == 0
    assert_same(
        memberships(service_engines(workers.state_dir, topics)),
        memberships([reference]),
        "state after takeover",
    )


def test_bad_input_goes_to_dead_letters(workers: WorkerFactory, topics: Topics) -> None:
    """Malformed, mistyped, anonymous, huge and unknown messages are dead-lettered with a
    reason; the worker keeps running and applies the good messages around them.

    The worker runs with an API token: the views refuse requests without it, and
    /metrics counts what happened."""
    bootstrap = workers.broker.bootstrap
    token = "s3cret-" + uuid.uuid4().hex
    token_file = workers.tmp / "api-token"
    token_file.write_text(token + "\n")
    worker = workers.start("watermark", "--api-token-file", str(token_file))
    worker.token = token
    worker.wait_assigned(PARTITIONS)
    ts = "2024-05-01T10:00:00Z"
    bad = {
        "malformed": b'{"customer_id": "c1", "ts": ',
        "not an object": b"[1, 2, 3]",
        "wrong type": json.dumps({"customer_id": "c1", "ts": ts, "amount": "lots"}).encode(),
        "bad timestamp": json.dumps({"customer_id": "c1", "ts": "yesterday"}).encode(),
        "missing customer": json.dumps({"ts": ts, "event_type": "purchase", "amount": 5}).encode(),
        "huge": json.dumps({"customer_id": "c1", "ts": ts, "pad": "x" * 400_000}).encode(),
        "unknown type": json.dumps({"type": "teleport", "userId": "c1", "timestamp": ts}).encode(),
        "no event name": json.dumps({"type": "track", "userId": "c1", "timestamp": ts}).encode(),
        "not arrow": b"\xff\xff\xff\xff\x10\x00\x00\x00garbage",
    }  # fmt: skip
    good = [
        json.dumps({"customer_id": "good1", "ts": ts, "amount": 600.0, "order_id": "o1"}).encode(),
        json.dumps(
            {"type": "track", "event": "Order Completed", "userId": "good2", "timestamp": ts,
             "properties": {"order_id": "o2", "total": 30.0}}
        ).encode(),
    ]  # fmt: skip
    payloads = [good[0], *bad.values(), good[1]]
    # Bad messages all on one key: one partition, in order, between the good ones.
    triples = [(b"c1", value, None) for value in payloads]
    run(send_messages(bootstrap, topics.events, triples))

    letters = read_json(bootstrap, topics.dead_letters, min_count=len(bad), timeout=60)
    assert len(letters) == len(bad), letters
    for letter in letters:
        assert letter["reason"], letter
        assert letter["topic"] == topics.events
        assert letter["partition"] == partition_of(b"c1", PARTITIONS)
        assert isinstance(letter["offset"], int)
    by_offset = sorted(letters, key=lambda x: x["offset"])
    assert "exceeds" in by_offset[5]["reason"]  # the huge one, rejected before decoding
    assert by_offset[5]["truncated"] is True

    # Still alive, and the good messages on either side were applied.
    assert worker.alive()
    wait_until(lambda: worker.get("/customers/good2")[0] == 200, 30, what="good2 applied")
    status, profile = worker.get("/customers/good1")
    assert status == 200 and "big_spender" in profile["segments"]

    # Only /health is open; a missing or wrong token is a 401, an absurd id a 400.
    for path in ("/segments", "/customers/good1", "/metrics"):
        assert worker.get_raw(path)[0] == 401, path
        assert worker.get_raw(path, token="wrong-" + token)[0] == 401, path
    assert worker.get_raw("/health")[0] == 200
    assert worker.get("/customers/" + "x" * 300)[0] == 400

    status, text = worker.get_raw("/metrics", token)
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}

    def total(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[name].samples
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
        )

    home = str(partition_of(b"c1", PARTITIONS))
    assert total("segstream_messages_rejected", topic=topics.events, partition=home) == len(bad)
    assert total("segstream_messages_applied", partition=home) == len(payloads) - len(bad)
    changes = read_json(bootstrap, topics.changes, min_count=1)
    assert total("segstream_changes") == len(changes)
    assert total("segstream_changes", segment="big_spender", cause="event") == sum(
        1 for c in changes if c["segment"] == "big_spender" and c["cause"] == "event"
    )
    lags = [s.value for s in families["segstream_consumer_lag"].samples]
    assert lags and all(v == 0 for v in lags)
    [rules_info] = families["segstream_rules_info"].samples
    assert rules_info.value == 1 and rules_info.labels["fingerprint"]
    batches = [s for s in families["segstream_batch_seconds"].samples if s.name.endswith("_count")]
    assert batches and batches[0].value >= 1
    assert worker.stop() == 0


def test_broker_restart_loses_nothing(rules_path: Path, tmp_path: Path) -> None:
    """Stop and restart the broker while the worker runs: it reconnects and misses nothing.

    Uses a broker of its own, so that restarting it disturbs no other test.
    """
    private = Broker.start_new()
    try:
        t = Topics(f"r{uuid.uuid4().hex[:10]}")
        run(ensure_topics(private.url, [t.events, t.traits, t.changes, t.dead_letters], PARTITIONS))
        factory = WorkerFactory(private, rules_path, t, tmp_path)
        try:
            customers, n_events, seed = 300, 4000, 14
            table = events_table(customers, n_events, seed)
            messages = event_messages(customers, n_events, seed)
            worker = factory.start()
            worker.wait_assigned(PARTITIONS)
            half = len(messages) // 2
            run(send_messages(private.bootstrap, t.events, keyed_json(messages[:half])))
            wait_consumed(worker, half)

            private.stop()
            time.sleep(3)
            assert worker.alive(), worker.tail()
            private.restart_start()

            run(send_messages(private.bootstrap, t.events, keyed_json(messages[half:])))
            wait_consumed(worker, len(messages), timeout=180)
            reference = bulk_reference(table)
            wait_clocks_equal(worker, reference.clock_ms)
            assert worker.stop() == 0
            want = memberships([reference])
            assert_same(memberships(service_engines(factory.state_dir, t)), want, "state")
            changes = read_json(private.bootstrap, t.changes, min_count=1)
            assert_same(replay_changes(changes), want, "replayed changes")
        finally:
            factory.kill_all()
    finally:
        private.clean()


def test_wall_clock_emits_dormant_without_events(
    workers: WorkerFactory, topics: Topics, tmp_path: Path
) -> None:
    """After the last event, the wall clock alone makes customers dormant (cause `time`)."""
    rules = tmp_path / "fast.yaml"
    rules.write_text(
        "segments:\n"
        "  - name: dormant\n"
        "    rule: orders >= 2 AND last_purchase_at < now() - INTERVAL '6 seconds'\n"
    )
    workers.rules = rules
    bootstrap = workers.broker.bootstrap
    worker = workers.start("wall")
    worker.wait_assigned(PARTITIONS)
    now = datetime.now(UTC)
    quiet = [f"quiet{i}" for i in range(8)]
    messages = [
        json.dumps(
            {"customer_id": who, "ts": (now - timedelta(seconds=s)).isoformat(), "amount": 20,
             "order_id": f"{who}-{s}"}
        ).encode()
        for who in quiet
        for s in (2, 1)
    ]  # fmt: skip
    run(send_messages(bootstrap, topics.events, keyed_json(messages)))
    wait_consumed(worker, len(messages))
    # Right after their orders nobody is dormant yet.
    assert worker.get("/segments")[1].get("dormant", 0) == 0

    def dormant_entries() -> list[dict[str, Any]] | None:
        changes = read_json(bootstrap, topics.changes, idle=0.3, timeout=10)
        entries = [c for c in changes if c["segment"] == "dormant" and c["change"] == "enter"]
        return entries if len(entries) >= len(quiet) else None

    entries = wait_until(dormant_entries, 40, interval=1.0, what="dormant entries")
    assert sorted(e["customer_id"] for e in entries) == sorted(quiet)
    assert {e["cause"] for e in entries} == {"time"}
    # Each entered at the instant it became due: 6 s after its last order.
    for entry in entries:
        at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
        assert abs((at - (now - timedelta(seconds=1) + timedelta(seconds=6))).total_seconds()) < 1
    assert worker.get("/segments")[1]["dormant"] == len(quiet)
    assert worker.stop() == 0
