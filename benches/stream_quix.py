"""A Quix Streams app keeping the benchmark's per-customer aggregates, as a peer.

One stateful `apply` per message: the customer's ltv (cents), orders and last purchase,
read from and written back to Quix's RocksDB state (changelogged to Kafka, Quix's
default). It counts what it processed and stops once the whole backlog went through.

    python benches/stream_quix.py BOOTSTRAP TOPIC GROUP EXPECTED STATE_DIR

Prints one JSON line: the count, the messages and seconds from the first to the last
message, and how many customers it found no state for; that must be the backlog's number
of customers, so state lost between two messages of a customer shows up.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from quixstreams import Application, State


def main(argv: list[str]) -> int:
    bootstrap, topic, group, expected_s, state_dir = argv
    expected = int(expected_s)
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    seen = {"count": 0, "started": 0.0, "last": 0.0, "customers": 0}

    def update(value: dict[str, Any], state: State) -> dict[str, Any]:
        agg = state.get("agg")
        if agg is None:
            agg = {"ltv": 0, "orders": 0, "last_purchase": None}
            seen["customers"] += 1
        agg["ltv"] += round(value["amount"] * 100)
        agg["orders"] += 1
        ts = value["ts"]
        agg["last_purchase"] = ts if agg["last_purchase"] is None else max(agg["last_purchase"], ts)
        state.set("agg", agg)
        now = time.perf_counter()
        if seen["count"] == 0:
            seen["started"] = now
        seen["count"] += 1
        seen["last"] = now
        if seen["count"] >= expected:
            app.stop()
        return agg

    sdf = app.dataframe(app.topic(topic, key_deserializer="str", value_deserializer="json"))
    sdf.apply(update, stateful=True)
    app.run()
    report = {
        "count": seen["count"],
        "timed": seen["count"] - 1,
        "seconds": seen["last"] - seen["started"],
        "customers": seen["customers"],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
