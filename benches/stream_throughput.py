"""Streaming benchmark: one segstream worker against a plain Faust app, on a local broker.

1. Throughput: a backlog of generated JSON events (flat and Segment forms) sits in a
   topic; a worker consumes, segments and publishes changes as fast as it can. Events/s
   = backlog / time from partition assignment to the last message applied. The same is
   measured for `stream_baseline.py`, a Faust app that keeps the aggregates in a Faust
   table updated per event in Python, on a (smaller) backlog of the same stream.
2. Latency: a fresh worker, events produced live at half segstream's measured rate (and
   again at 5,000/s), with a probe purchase (a new customer who enters `big_spender` at
   once) every 20 ms; the time from handing a probe to the producer to receiving its
   change on the output topic gives p50 and p99. On a small machine the producer, the
   broker and the worker share the cores, so the producer may fall short of the target.

The broker is `scripts/kafka.sh` on $KAFKA_PORT if one is running there, else one started
(and removed) on a free port. Timings depend on the machine; the ratio is the result.

    python benches/stream_throughput.py [--events 300000] [--baseline-events 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from segstream.generate import json_messages
from segstream.service.produce import customer_key
from segstream.service.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4
#: A second latency point, well below saturation, for reference.
LIGHT_RATE = 5_000.0
RULES = """
currency_scale: 2
traits: {industry: string, company_size: int, newsletter: bool}
segments:
  - {name: dormant, rule: "orders >= 2 AND last_purchase_at < now() - INTERVAL '90 days'"}
  - {name: big_spender, rule: "ltv >= 500"}
  - name: browser
    rule: "events('page_view', within => INTERVAL '30 days') >= 5 AND orders <= 1"
  - {name: kitchen_no_tableware, rule: "has_category('kitchen') AND NOT has_category('tableware')"}
  - name: trade_buyer
    rule: "industry IN ('manufacturing', 'wholesale', 'logistics') AND company_size >= 100"
lifecycles:
  - name: vip_tier
    stages:
      - {name: gold, rule: "ltv >= 2000"}
      - {name: silver, rule: "ltv >= 800"}
      - {name: bronze, rule: "ltv >= 200"}
      - {name: regular, rule: "orders >= 1"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """The broker on $KAFKA_PORT if up, else one of our own that `close` removes."""

    def __init__(self) -> None:
        self.port = int(os.environ.get("KAFKA_PORT", "9092"))
        self.owned = not port_open(self.port)
        if self.owned:
            self.port = free_port()
            self.env = {
                **os.environ,
                "KAFKA_PORT": str(self.port),
                "KAFKA_CONTROLLER_PORT": str(free_port()),
            }
            subprocess.run(
                ["bash", str(ROOT / "scripts/kafka.sh"), "start"],
                env=self.env,
                check=True,
                timeout=300,
            )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def close(self) -> None:
        if self.owned:
            subprocess.run(
                ["bash", str(ROOT / "scripts/kafka.sh"), "clean"],
                env=self.env,
                check=False,
                timeout=120,
            )


def http_json(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> float:
    """Send everything as fast as possible; returns messages/s."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks=1
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in messages:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(messages) / (time.perf_counter() - started)


class Process:
    """A worker subprocess with a /health view that reports `applied`."""

    def __init__(self, command: list[str], web_port: int, log: Path) -> None:
        self.web_port = web_port
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def health(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited; see {self.log}")
        body = http_json(self.web_port, "/health")
        return body if isinstance(body, dict) else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def segstream_worker(broker: Broker, tag: str, rules: Path, tmp: Path) -> Process:
    port = free_port()
    command = [
        sys.executable, "-m", "segstream.cli", "worker", str(rules), "--broker", broker.url,
        "--app-id", f"{tag}-app", "--events-topic", f"{tag}-events",
        "--traits-topic", f"{tag}-traits", "--changes-topic", f"{tag}-changes",
        "--dead-letter-topic", f"{tag}-dead", "--partitions", str(PARTITIONS),
        "--state-dir", str(tmp / "state"), "--web-port", str(port), "--clock", "watermark",
        "--loglevel", "warning",
    ]  # fmt: skip
    return Process(command, port, tmp / f"{tag}.log")


def baseline_worker(broker: Broker, tag: str, tmp: Path) -> Process:
    port = free_port()
    command = [
        sys.executable, str(ROOT / "benches/stream_baseline.py"), "worker", "--broker", broker.url,
        "--app-id", f"{tag}-app", "--events-topic", f"{tag}-events",
        "--changes-topic", f"{tag}-changes", "--partitions", str(PARTITIONS),
        "--web-port", str(port),
    ]  # fmt: skip
    return Process(command, port, tmp / f"{tag}.log")


def measure_backlog(worker: Process, total: int, timeout: float) -> float:
    """events/s from the first applied message to the last; start-up is not counted."""
    try:
        first = wait_until(
            lambda: (worker.health() or {}).get("applied", 0),
            180,
            "the first message to be applied",
            interval=0.02,
        )
        started = time.perf_counter()
        wait_until(
            lambda: (worker.health() or {}).get("applied", 0) >= total,
            timeout,
            f"{total} events to be applied",
            interval=0.05,
        )
        return (total - first) / (time.perf_counter() - started)
    finally:
        worker.stop()


def generated(customers: int, events: int, seed: int) -> list[tuple[bytes | None, bytes]]:
    return [(customer_key(v), v) for v in json_messages(customers, events, seed, traits=True)]


def event_ts(value: bytes) -> Any:
    """The event time of a JSON event message; None for a trait upsert."""
    obj = json.loads(value)
    return obj.get("ts", obj.get("timestamp"))


async def latency_run(
    bootstrap: str,
    tag: str,
    messages: list[tuple[bytes | None, bytes]],
    rate: float,
    seconds: float,
) -> tuple[list[float], float]:
    """Produce at `rate` with a probe every 20 ms; returns probe latencies (s) and the rate."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=5, enable_auto_commit=False
    )
    await consumer.start()
    tps = [TopicPartition(f"{tag}-changes", p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    sent_at: dict[str, float] = {}
    latency: dict[str, float] = {}

    async def collect(stop: asyncio.Event) -> None:
        while not stop.is_set() or len(latency) < len(sent_at):
            batch = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    who = r.key.decode() if r.key else ""
                    if who in sent_at and who not in latency:
                        latency[who] = now - sent_at[who]
            if stop.is_set() and time.perf_counter() - stop_time[0] > 10:
                break

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    await producer.start()
    stop = asyncio.Event()
    stop_time = [0.0]
    collector = asyncio.create_task(collect(stop))
    started = time.perf_counter()
    sent = 0
    next_probe = started
    i = 0
    try:
        while time.perf_counter() - started < seconds and i < len(messages):
            ahead = sent / rate - (time.perf_counter() - started)
            if ahead > 0.001:
                await asyncio.sleep(ahead)
            key, value = messages[i]
            i += 1
            await producer.send(f"{tag}-events", value, key=key)
            sent += 1
            ts = event_ts(value)
            if ts is not None and time.perf_counter() >= next_probe:
                next_probe += 0.02
                who = f"probe-{len(sent_at)}"
                # At the stream's own event time: the probe must not move the clock.
                probe = {
                    "customer_id": who,
                    "ts": ts,
                    "amount": 600.0,
                    "order_id": who,
                }
                await producer.send(f"{tag}-events", json.dumps(probe).encode(), key=who.encode())
                sent_at[who] = time.perf_counter()
        achieved = sent / (time.perf_counter() - started)
        await producer.flush()
    finally:
        await producer.stop()
        stop_time[0] = time.perf_counter()
        stop.set()
        await collector
        await consumer.stop()
    missing = len(sent_at) - len(latency)
    if missing:
        print(f"  warning: {missing} of {len(sent_at)} probes saw no change in time")
    return sorted(latency.values()), achieved


def measure_latency(
    broker: Broker,
    tag: str,
    rules: Path,
    tmp: Path,
    stream: list[tuple[bytes | None, bytes]],
    args: argparse.Namespace,
    target: float,
) -> None:
    """Start a fresh worker, produce live at `target` events/s, print p50/p99 latency."""
    names = [f"{tag}-events", f"{tag}-traits", f"{tag}-changes", f"{tag}-dead"]
    asyncio.run(ensure_topics(broker.url, names, PARTITIONS))
    worker = segstream_worker(broker, tag, rules, tmp)
    try:
        wait_until(
            lambda: len((worker.health() or {}).get("partitions", {})) == PARTITIONS,
            120,
            "the latency worker to own its partitions",
        )
        latencies, achieved = asyncio.run(
            # Events only (the stream opens with one trait upsert per customer).
            latency_run(
                broker.bootstrap, tag, stream[args.customers :], target, args.latency_seconds
            )
        )
    finally:
        worker.stop()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(
        f"latency at {achieved:>7,.0f} events/s (target {target:,.0f}): "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over {len(latencies)} probes"
    )
    if achieved < 0.9 * target:
        print("  note: the Python producer could not reach the target rate on this machine")


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="segstream backlog")
    parser.add_argument("--baseline-events", type=int, default=40_000, help="baseline backlog")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--latency-rate", type=float, default=None, help="events/s (default: half the max)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="segstream-bench-"))
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    broker = Broker()
    run = uuid.uuid4().hex[:8]
    try:
        print(
            f"broker 127.0.0.1:{broker.port} ({'started' if broker.owned else 'existing'}), "
            f"{PARTITIONS} partitions, {os.cpu_count()} cores"
        )
        stream = generated(args.customers, max(args.events, args.baseline_events), seed=21)
        seg_tag, base_tag, lat_tag = f"bs{run}", f"bb{run}", f"bl{run}"
        for tag in (seg_tag, base_tag):
            names = [f"{tag}-events", f"{tag}-traits", f"{tag}-changes", f"{tag}-dead"]
            asyncio.run(ensure_topics(broker.url, names, PARTITIONS))

        n_seg = min(args.events, len(stream))
        rate = asyncio.run(produce(broker.bootstrap, f"{seg_tag}-events", stream[:n_seg]))
        print(f"preloaded {n_seg:,} messages ({rate:,.0f}/s produce)")
        seg_rate = measure_backlog(segstream_worker(broker, seg_tag, rules, tmp), n_seg, 600)
        print(f"segstream worker:     {seg_rate:>10,.0f} events/s  ({n_seg:,} events)")

        n_base = min(args.baseline_events, len(stream))
        asyncio.run(produce(broker.bootstrap, f"{base_tag}-events", stream[:n_base]))
        base_rate = measure_backlog(baseline_worker(broker, base_tag, tmp), n_base, 900)
        print(f"plain Faust + table:  {base_rate:>10,.0f} events/s  ({n_base:,} events)")
        print(f"ratio: segstream is {seg_rate / base_rate:,.1f}x the plain Faust app")

        targets = [args.latency_rate or seg_rate / 2, LIGHT_RATE]
        for i, target in enumerate(targets):
            measure_latency(broker, f"{lat_tag}{i}", rules, tmp, stream, args, target)
    finally:
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
