"""The streaming benchmark's latency part: produce→change time of probes at a steady rate.

`stream_producer.py` runs in its own process and notes when it hands each probe to its
Kafka client; this process only collects the changes and notes when each probe's first
change arrived. Both use `time.monotonic()`, one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from stream_processes import BENCHES, PARTITIONS, Broker, Process, wait_until

#: How long to wait for the changes of the last probes once the producer is done.
DRAIN_S = 10.0


async def latency_run(
    bootstrap: str, tag: str, backlog: Path, rate: float, seconds: float
) -> tuple[list[float], float, int]:
    """Probe latencies (s, sorted), the rate the producer reached and the probes it sent."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=5, enable_auto_commit=False
    )
    await consumer.start()
    tps = [TopicPartition(f"{tag}-changes", p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    arrived: dict[str, float] = {}

    async def collect(until: list[float]) -> None:
        while time.monotonic() < until[0]:
            batch = await consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    if r.key and r.key.startswith(b"probe-"):
                        arrived.setdefault(r.key.decode(), now)

    until = [float("inf")]
    collector = asyncio.create_task(collect(until))
    try:
        producer = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCHES / "stream_producer.py"),
            bootstrap,
            f"{tag}-events",
            str(backlog),
            str(rate),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        out, _ = await producer.communicate()
        if producer.returncode != 0:
            raise RuntimeError(f"the latency producer exited with {producer.returncode}")
        report = json.loads(out.decode().strip().splitlines()[-1])
        sent_at: dict[str, float] = report["probes"]
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and not sent_at.keys() <= arrived.keys():
            await asyncio.sleep(0.05)
    finally:
        until[0] = 0.0
        await collector
        await consumer.stop()
    latencies = sorted(arrived[who] - t for who, t in sent_at.items() if who in arrived)
    missing = len(sent_at) - len(latencies)
    if missing:
        print(f"  warning: {missing} of {len(sent_at)} probes saw no change in time")
    return latencies, report["sent"] / report["seconds"], len(sent_at)


def measure_latency(
    broker: Broker, tag: str, worker: Process, backlog: Path, target: float, seconds: float
) -> None:
    """With `worker` consuming `{tag}-events`, produce at `target`/s; print p50/p99."""
    try:
        wait_until(
            lambda: len((worker.health() or {}).get("partitions", {})) == PARTITIONS,
            120,
            "the latency worker to own its partitions",
        )
        latencies, achieved, probes = asyncio.run(
            latency_run(broker.bootstrap, tag, backlog, target, seconds)
        )
    finally:
        worker.stop()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(
        f"latency at {achieved:>7,.0f} events/s (target {target:,.0f}): "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over {len(latencies)} of "
        f"{probes} probes (producer in its own process)"
    )
    if achieved < 0.9 * target:
        print("  note: the Python producer could not reach the target rate on this machine")


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")
