"""The latency part's producer, in its own process so that it does not share the event loop
(or the GIL) of the process that collects the changes.

It sends the messages of a backlog file (one `key<TAB>value` line each) at a steady rate,
cycling through them, and every 20 ms a probe: a purchase of a new customer, at the
stream's current event time, that enters `big_spender` at once. When a probe is handed to
the client, it notes `time.monotonic()`, the same clock in every process of the machine,
so the collector can subtract it from the time the change arrived.

    python benches/stream_producer.py BOOTSTRAP TOPIC BACKLOG_FILE RATE SECONDS

Prints one JSON line: messages sent, seconds, and the send time of each probe.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

PROBE_EVERY_S = 0.02


def read_backlog(path: Path) -> list[tuple[bytes, bytes]]:
    pairs = []
    for line in path.read_bytes().splitlines():
        key, _, value = line.partition(b"\t")
        pairs.append((key, value))
    return pairs


async def produce(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], rate: float, seconds: float
) -> dict[str, object]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    await producer.start()
    probes: dict[str, float] = {}
    sent = 0
    try:
        started = time.monotonic()
        next_probe = started
        while (elapsed := time.monotonic() - started) < seconds:
            ahead = sent / rate - elapsed
            if ahead > 0.001:
                await asyncio.sleep(ahead)
            key, value = messages[sent % len(messages)]
            await producer.send(topic, value, key=key)
            sent += 1
            if time.monotonic() >= next_probe:
                next_probe += PROBE_EVERY_S
                who = f"probe-{len(probes)}"
                # At the stream's own event time: the probe must not move the clock.
                ts = json.loads(value)["ts"]
                probe = {"customer_id": who, "ts": ts, "amount": 600.0, "order_id": who}
                probes[who] = time.monotonic()
                await producer.send(topic, json.dumps(probe).encode(), key=who.encode())
        seconds_taken = time.monotonic() - started
        await producer.flush()
    finally:
        await producer.stop()
    return {"sent": sent, "seconds": seconds_taken, "probes": probes}


def main(argv: list[str]) -> int:
    bootstrap, topic, backlog, rate, seconds = argv
    messages = read_backlog(Path(backlog))
    report = asyncio.run(produce(bootstrap, topic, messages, float(rate), float(seconds)))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
