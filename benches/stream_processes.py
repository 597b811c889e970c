"""What the streaming benchmark runs: the broker, worker subprocesses with a /health view,
and peers run as subprocesses that print one JSON line of results.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
#: Partitions of every topic of the benchmark.
PARTITIONS = 4


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


def segstream_worker(
    broker: Broker, tag: str, events_topic: str, rules: Path, state_dir: Path, log: Path
) -> Process:
    """A `segstream worker` in group `{tag}-app` on `events_topic`, its other topics `tag`'s."""
    port = free_port()
    command = [
        sys.executable, "-m", "segstream.cli", "worker", str(rules), "--broker", broker.url,
        "--app-id", f"{tag}-app", "--events-topic", events_topic,
        "--traits-topic", f"{tag}-traits", "--changes-topic", f"{tag}-changes",
        "--dead-letter-topic", f"{tag}-dead", "--partitions", str(PARTITIONS),
        "--state-dir", str(state_dir), "--web-port", str(port), "--clock", "watermark",
        "--loglevel", "warning",
    ]  # fmt: skip
    return Process(command, port, log)


def baseline_worker(broker: Broker, tag: str, events_topic: str, log: Path) -> Process:
    port = free_port()
    command = [
        sys.executable, str(BENCHES / "stream_baseline.py"), "worker", "--broker", broker.url,
        "--app-id", f"{tag}-app", "--events-topic", events_topic,
        "--changes-topic", f"{tag}-changes", "--partitions", str(PARTITIONS),
        "--web-port", str(port),
    ]  # fmt: skip
    return Process(command, port, log)


def run_peer(
    script: str, args: list[str], log: Path, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `benches/<script>` with `args`; its last line of output is a JSON report."""
    with open(log, "wb") as err:
        done = subprocess.run(
            [sys.executable, str(BENCHES / script), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            check=False,
        )
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{script} exited with {done.returncode}; see {log}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report
