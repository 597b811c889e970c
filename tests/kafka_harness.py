"""Test harness for the streaming service: a real Kafka broker, worker processes, topic I/O.

The broker is the one `scripts/kafka.sh` runs (Apache Kafka from Maven Central, no
Docker). Workers run as `python -m segstream.cli worker …` subprocesses, so a test can
kill one with SIGKILL the way a machine dies. Every wait here is bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = ROOT / "scripts" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Poll `check` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Broker:
    """A broker on 127.0.0.1:`port`; `owned` when this test session started it."""

    port: int
    controller_port: int
    owned: bool

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def _run(self, command: str, timeout: float = 300.0) -> None:
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }
        subprocess.run(["bash", str(KAFKA_SH), command], check=True, env=env, timeout=timeout)

    @classmethod
    def start_new(cls) -> Broker:
        broker = cls(port=free_port(), controller_port=free_port(), owned=True)
        broker._run("start")
        return broker

    def stop(self) -> None:
        self._run("stop", timeout=60)

    def restart_start(self) -> None:
        self._run("start")

    def clean(self) -> None:
        """Stop and delete the broker's data (only for brokers this session started)."""
        if self.owned:
            self._run("clean", timeout=60)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- producing -----------------------------------------------------------------------------


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for `key` (murmur2, as in Java)."""
    return int(DefaultPartitioner()(key, list(range(partitions)), list(range(partitions))))


async def send_messages(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes, int | None]],
    rate: float | None = None,
) -> int:
    """Send `(key, value, partition)` triples; None partition means by key. Returns the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        max_request_size=4 << 20,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    sent = 0
    started = time.perf_counter()
    futures = []
    try:
        for key, value, partition in messages:
            if rate:
                ahead = sent / rate - (time.perf_counter() - started)
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            futures.append(await producer.send(topic, value, key=key, partition=partition))
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


# -- consuming -----------------------------------------------------------------------------


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        if entry.get("error_code", 0) == 0 and entry.get("topic") == topic:
            return sorted(p["partition"] for p in entry["partitions"])
    return []


async def _read_topic(
    bootstrap: str, topic: str, min_count: int, idle: float, timeout: float
) -> list[Any]:
    deadline = time.monotonic() + timeout
    parts = await _partitions(bootstrap, topic)
    if not parts:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got = [r for rs in batch.values() for r in rs]
            if got:
                records.extend(got)
                last_new = time.monotonic()
                continue
            at_end = all([await consumer.position(tp) >= ends[tp] for tp in tps])
            if at_end and len(records) >= min_count and time.monotonic() - last_new >= idle:
                break
        return records
    finally:
        await consumer.stop()


def read_topic(
    bootstrap: str, topic: str, min_count: int = 0, idle: float = 0.3, timeout: float = 60.0
) -> list[Any]:
    """Every record of `topic` from the beginning: at least up to its end when called, at
    least `min_count`, then until none came for `idle` seconds (or at `timeout`).

    Records are aiokafka ConsumerRecords, in order within each partition."""
    return run(_read_topic(bootstrap, topic, min_count, idle, timeout))


def read_json(bootstrap: str, topic: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in read_topic(bootstrap, topic, **kwargs)]


# -- workers -------------------------------------------------------------------------------


@dataclass
class Topics:
    """Unique topic names and group id for one test."""

    name: str

    @property
    def events(self) -> str:
        return f"{self.name}-events"

    @property
    def traits(self) -> str:
        return f"{self.name}-traits"

    @property
    def changes(self) -> str:
        return f"{self.name}-changes"

    @property
    def dead_letters(self) -> str:
        return f"{self.name}-dead"

    @property
    def app_id(self) -> str:
        return f"{self.name}-app"


@dataclass
class Worker:
    """A `segstream worker` subprocess and its HTTP views."""

    broker: Broker
    rules: Path
    topics: Topics
    state_dir: Path
    log_path: Path
    clock: str = "watermark"
    partitions: int = 4
    extra: Sequence[str] = ()
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        t = self.topics
        return [
            sys.executable, "-m", "segstream.cli", "worker", str(self.rules),
            "--broker", self.broker.url,
            "--app-id", t.app_id,
            "--events-topic", t.events,
            "--traits-topic", t.traits,
            "--changes-topic", t.changes,
            "--dead-letter-topic", t.dead_letters,
            "--partitions", str(self.partitions),
            "--state-dir", str(self.state_dir),
            "--web-port", str(self.web_port),
            "--clock", self.clock,
            "--tick-interval", "0.5",
            "--checkpoint-interval", "1",
            "--session-timeout", "6",
            *self.extra,
        ]  # fmt: skip

    def start(self) -> Worker:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.state_dir.parent,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    #: Bearer token sent with every request but /health (None: none).
    token: str | None = None

    def get_raw(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        request = urllib.request.Request(url)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get(self, path: str) -> tuple[int, Any]:
        status, body = self.get_raw(path, self.token)
        return status, json.loads(body or b"null")

    def health(self) -> dict[str, Any] | None:
        try:
            status, body = self.get("/health")
        except (OSError, ValueError):
            return None
        return body if status == 200 else None

    def owned(self) -> set[int]:
        health = self.health()
        return {int(p) for p in health["partitions"]} if health else set()

    def wait_assigned(self, count: int | None = None, timeout: float = 90.0) -> None:
        """Until the worker serves HTTP and owns `count` partitions (any, if None)."""

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"worker exited early; log:\n{self.tail()}")
            owned = self.owned()
            return bool(owned) and (count is None or len(owned) == count)

        wait_until(ready, timeout, what=f"worker to own {count or 'any'} partitions")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=60)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a clean stop writes a final checkpoint) and wait; SIGKILL after `timeout`."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        return int(self.proc.returncode)

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
