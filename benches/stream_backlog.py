"""The streaming benchmark's backlog: flat JSON purchase messages, keyed by customer.

Every consumer of the benchmark reads the same messages, so each helper here is shared by
the orchestrating script and the peers it runs as subprocesses: the generator (seeded, so
a peer can rebuild the very stream the bench produced) and the totals a peer that kept the
aggregates must arrive at (a peer that dropped a message cannot match them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from segstream.generate import purchase_events

#: Fields of a backlog message; `ts` is epoch milliseconds so that every peer can type it.
FIELDS = ("customer_id", "ts", "event_type", "amount", "order_id", "categories", "quantity")


def purchase_messages(customers: int, count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """`count` flat purchase messages of `customers` customers in time order, as (key, value).

    Refunds and signals of the generated stream are skipped, so a peer's aggregates are
    plain sums; the generator is asked for more events if fewer than `count` purchases came out.
    """
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    events = count * 7 + 1000  # about 15% of the generated events are purchases
    while True:
        out: list[tuple[bytes, bytes]] = []
        for batch in purchase_events(customers, events, seed=seed):
            rows = batch.filter(pc.equal(batch["event_type"], "purchase")).select(FIELDS)
            rows = rows.set_column(1, "ts", rows["ts"].cast(pa.int64()))
            for row in rows.to_pylist():
                msg = {k: v for k, v in row.items() if v is not None and v != []}
                out.append((row["customer_id"].encode(), dumps(msg).encode()))
                if len(out) == count:
                    return out
        events = int(events * count / max(1, len(out)) * 1.1) + 1000


@dataclass(frozen=True)
class Totals:
    """What the per-customer aggregates of the whole backlog add up to."""

    messages: int
    customers: int
    ltv_cents: int

    @classmethod
    def of(cls, messages: list[tuple[bytes, bytes]]) -> Totals:
        cents = 0
        who = set()
        for key, value in messages:
            cents += round(json.loads(value)["amount"] * 100)
            who.add(key)
        return cls(len(messages), len(who), cents)


def preload(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Send everything as fast as the client can (confluent-kafka); returns messages/s."""
    from confluent_kafka import KafkaException, Producer

    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": 1, "batch.size": 1 << 20}
    )
    started = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) or errors:
        raise KafkaException(f"preload of {topic} failed: {errors[:3] or 'flush timed out'}")
    return len(messages) / (time.perf_counter() - started)
