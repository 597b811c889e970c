"""A Pathway program keeping the benchmark's per-customer aggregates, as a peer.

`pw.io.kafka.read` of the backlog topic (JSON, typed by a schema), then
`groupby(customer_id).reduce()` to ltv, orders and last purchase, and a one-row reduce
of those aggregates whose changes a subscriber follows: its `orders` total says how many
messages the grouped aggregates took in. Once that is the whole backlog, it prints the
result and exits (a streaming Pathway run does not end by itself).

    PATHWAY_THREADS=2 python benches/stream_pathway.py BOOTSTRAP TOPIC GROUP EXPECTED

Prints one JSON line: the count, the messages and seconds from the first closed time of
the totals to the last (the first minibatch starts the clock, so it is not counted), and the
totals of the final aggregates (customers, ltv) to check against the backlog's.
"""

from __future__ import annotations

import json
import os
import sys
from time import perf_counter
from typing import Any

import pathway as pw

#: Pathway's minibatch length when reading Kafka; its default (1.5 s) would put a small
#: backlog in one or two batches and leave no span to time.
AUTOCOMMIT_MS = 200


class Purchase(pw.Schema):
    customer_id: str
    ts: int
    amount: float


def main(argv: list[str]) -> int:
    bootstrap, topic, group, expected_s = argv
    expected = int(expected_s)
    settings = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": "6000",
    }
    t = pw.io.kafka.read(
        settings,
        topic=topic,
        schema=Purchase,
        format="json",
        autocommit_duration_ms=AUTOCOMMIT_MS,
    )
    per_customer = t.groupby(t.customer_id).reduce(
        t.customer_id,
        # Cents, as segstream keeps money (and a float total of float sums came out wrong
        # with Pathway 0.33 in this program, by a different amount each run).
        ltv=pw.reducers.sum(pw.cast(int, t.amount * 100 + 0.5)),
        orders=pw.reducers.count(),
        last_purchase=pw.reducers.max(t.ts),
    )
    totals = per_customer.reduce(
        customers=pw.reducers.count(),
        orders=pw.reducers.sum(per_customer.orders),
        ltv=pw.reducers.sum(per_customer.ltv),
    )
    # The totals as of the last closed time: changes within one time (a retraction and an
    # addition, maybe from both threads) are only consistent once that time is closed.
    rows: dict[Any, dict[str, Any]] = {}
    seen: dict[str, Any] = {"first": None, "started": 0.0}

    def on_change(key: Any, row: dict[str, Any], time: int, is_addition: bool) -> None:
        if is_addition:
            rows[key] = row
        elif rows.get(key) == row:
            del rows[key]

    def on_time_end(time: int) -> None:
        if not rows:
            return
        (row,) = rows.values()
        now = perf_counter()
        if seen["first"] is None:
            seen["first"], seen["started"] = row["orders"], now
        if row["orders"] >= expected:
            report = {
                "count": row["orders"],
                "timed": row["orders"] - seen["first"],
                "seconds": now - seen["started"],
                "customers": row["customers"],
                "ltv": row["ltv"],
            }
            print(json.dumps(report), flush=True)
            os._exit(0)

    pw.io.subscribe(totals, on_change=on_change, on_time_end=on_time_end)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
