"""The peer of the streaming benchmark: a plain Faust app doing segstream's job in Python.

It keeps the aggregates the benchmark's rules need in a Faust `Table` (one JSON value per
customer, changelogged to Kafka as Faust tables are), parses each JSON message with
`json.loads`, updates the customer's entry per event and evaluates the same segments and
lifecycle in Python, publishing one JSON message per membership change. This is how one
would write the service without segstream. It has no timer index (time-driven changes
are only seen when the customer's next event arrives), so it does less work than the
engine; the comparison flatters it.

Run by `benches/stream_throughput.py` as `python benches/stream_baseline.py worker …`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime
from typing import Any

import faust
from faust.web import Request, Response, View

DAY_MS = 86_400_000
TRADE = {"manufacturing", "wholesale", "logistics"}
STAGES = (("gold", 200_000), ("silver", 80_000), ("bronze", 20_000))  # cents


def _ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    text = str(value).replace("Z", "+00:00")
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def normalise(msg: dict[str, Any]) -> dict[str, Any] | None:
    """Flat or Segment-spec message -> flat event dict (None for messages to skip)."""
    kind = msg.get("type")
    if kind in ("identify", "traits"):
        return {
            "kind": "traits",
            "customer_id": msg.get("userId", msg.get("customer_id")),
            "traits": msg.get("traits") or {},
        }
    if kind == "track":
        props = msg.get("properties") or {}
        name = msg.get("event", "")
        products = props.get("products") or []
        event = {
            "customer_id": msg.get("userId"),
            "ts": _ms(msg["timestamp"]),
            "categories": [p.get("category") for p in products if p.get("category")],
            "product_ids": [p.get("product_id") for p in products if p.get("product_id")],
            "quantity": sum(int(p.get("quantity") or 1) for p in products) or None,
        }
        if name == "Order Completed":
            event.update(kind="purchase", amount=props.get("total"))
        elif name == "Order Refunded":
            event.update(kind="refund", amount=props.get("total"))
        else:
            event.update(kind=name.lower().replace(" ", "_"))
        return event
    return {
        "customer_id": msg.get("customer_id"),
        "ts": _ms(msg["ts"]),
        "kind": msg.get("event_type", "purchase"),
        "amount": msg.get("amount"),
        "categories": msg.get("categories") or [],
        "product_ids": msg.get("product_ids") or [],
        "quantity": msg.get("quantity"),
    }


def apply(agg: dict[str, Any], ev: dict[str, Any]) -> None:
    """Update one customer's aggregates with one event, as the engine would."""
    kind = ev["kind"]
    if kind == "traits":
        agg["traits"].update(ev["traits"])
        return
    ts = ev["ts"]
    if kind == "purchase":
        cents = round(float(ev["amount"] or 0) * 100)
        agg["ltv"] += cents
        agg["orders"] += 1
        agg["items"] += int(ev["quantity"] or 1)
        agg["last_purchase"] = max(agg["last_purchase"] or ts, ts)
        cats = set(agg["categories"])
        cats.update(ev["categories"])
        agg["categories"] = sorted(cats)
    elif kind == "refund":
        agg["ltv"] -= round(float(ev["amount"] or 0) * 100)
        agg["refunds"] += 1
    elif kind == "page_view":
        # Keep only what the 30-day window needs: the 5 most recent views.
        views = sorted([*agg["views"], ts])[-5:]
        agg["views"] = views


def evaluate(agg: dict[str, Any], now: int) -> dict[str, Any]:
    """Segment memberships and the lifecycle stage of one customer at `now`."""
    last = agg["last_purchase"]
    traits = agg["traits"]
    cats = agg["categories"]
    recent_views = sum(1 for t in agg["views"] if t >= now - 30 * DAY_MS)
    stage = next((name for name, floor in STAGES if agg["ltv"] >= floor), None)
    if stage is None and agg["orders"] >= 1:
        stage = "regular"
    return {
        "dormant": agg["orders"] >= 2 and last is not None and last < now - 90 * DAY_MS,
        "big_spender": agg["ltv"] >= 50_000,
        "browser": recent_views >= 5 and agg["orders"] <= 1,
        "kitchen_no_tableware": "kitchen" in cats and "tableware" not in cats,
        "trade_buyer": traits.get("industry") in TRADE and (traits.get("company_size") or 0) >= 100,
        "vip_tier": stage,
    }


def new_aggregates() -> dict[str, Any]:
    return {
        "ltv": 0, "orders": 0, "refunds": 0, "items": 0, "last_purchase": None,
        "categories": [], "views": [], "traits": {}, "members": {},
    }  # fmt: skip


def create_app(args: argparse.Namespace) -> faust.App:
    datadir = os.path.join(tempfile.gettempdir(), "segstream-bench-baseline", args.app_id)
    os.makedirs(os.path.dirname(datadir), exist_ok=True)
    app = faust.App(
        args.app_id,
        broker=args.broker,
        datadir=datadir,
        store="memory://",
        web_port=args.web_port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        consumer_auto_offset_reset="earliest",
        topic_partitions=args.partitions,
        stream_buffer_maxsize=16384,
    )
    events = app.topic(args.events_topic, key_serializer="raw", value_serializer="raw")
    changes = app.topic(args.changes_topic, key_serializer="raw", value_serializer="raw")
    table = app.Table("aggregates", partitions=args.partitions, key_type=bytes, value_type=dict)
    progress = {"applied": 0, "changes": 0, "clock": 0}

    @app.agent(events)
    async def segment(stream: faust.StreamT) -> None:
        async for key, value in stream.items():
            progress["applied"] += 1
            try:
                ev = normalise(json.loads(value))
            except (ValueError, KeyError, TypeError):
                continue
            if ev is None or key is None:
                continue
            agg = table.get(key) or new_aggregates()
            apply(agg, ev)
            if "ts" in ev:
                progress["clock"] = max(progress["clock"], ev["ts"])
            now = progress["clock"]
            before = agg["members"]
            after = evaluate(agg, now)
            for name, value_now in after.items():
                # Absent means "never a member": False for segments, None for stages.
                if before.get(name, None if name == "vip_tier" else False) != value_now:
                    change = {"customer_id": key.decode(), "segment": name, "to": value_now,
                              "at": now}  # fmt: skip
                    await changes.send(key=key, value=json.dumps(change).encode())
                    progress["changes"] += 1
            agg["members"] = after
            table[key] = agg

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json(progress)

    return app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stream_baseline")
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--broker", required=True)
    w.add_argument("--app-id", required=True)
    w.add_argument("--events-topic", required=True)
    w.add_argument("--changes-topic", required=True)
    w.add_argument("--partitions", type=int, default=4)
    w.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args(argv)
    app = create_app(args)
    try:
        app.Worker(loglevel="warning").execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
