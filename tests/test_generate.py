"""The purchase-stream generator: shape, determinism and the realism the demos rely on."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from segstream import generate


@pytest.fixture(scope="module")
def stream() -> pa.Table:
    return pa.Table.from_batches(list(generate.purchase_events(2_000, 60_000, seed=11)))


def test_schema_count_and_time_order(stream: pa.Table) -> None:
    assert stream.schema == generate.SCHEMA
    assert stream.num_rows == 60_000
    ts = stream["ts"].combine_chunks()
    assert pc.all(pc.less_equal(ts[:-1], ts[1:])).as_py()
    assert pc.count_distinct(stream["event_id"]).as_py() == stream.num_rows
    assert set(stream["event_type"].unique().to_pylist()) == set(generate.EVENT_TYPES)


def test_same_seed_same_stream_whatever_the_batch_size() -> None:
    def run(seed: int, batch_size: int) -> pa.Table:
        batches = list(generate.purchase_events(300, 5_000, seed=seed, batch_size=batch_size))
        assert all(b.num_rows <= batch_size for b in batches)
        return pa.Table.from_batches(batches)

    assert run(3, 1_000).equals(run(3, 333))
    assert not run(3, 1_000).equals(run(4, 1_000))


def test_money_and_orders(stream: pa.Table) -> None:
    kind = stream["event_type"]
    money = pc.is_in(kind, pa.array(["purchase", "refund"]))
    assert pc.all(pc.is_valid(stream.filter(money)["amount"])).as_py()
    assert (
        stream.filter(pc.invert(money))["amount"].null_count
        == stream.num_rows - pc.sum(money).as_py()
    )
    purchases = stream.filter(pc.equal(kind, "purchase"))
    refunds = stream.filter(pc.equal(kind, "refund"))
    assert 0.02 <= refunds.num_rows / purchases.num_rows <= 0.04
    signals = stream.num_rows - purchases.num_rows - refunds.num_rows
    assert signals > 3 * purchases.num_rows
    # Every refund names an earlier order of the same customer, and returns at most its amount.
    orders = {
        o: (c, t, a)
        for o, c, t, a in zip(
            *(purchases[k].to_pylist() for k in ("order_id", "customer_id", "ts", "amount")),
            strict=True,
        )
    }
    for o, c, t, a in zip(
        *(refunds[k].to_pylist() for k in ("order_id", "customer_id", "ts", "amount")), strict=True
    ):
        assert orders[o][0] == c and orders[o][1] <= t and a <= orders[o][2]


def test_customers_differ(stream: pa.Table) -> None:
    purchases = stream.filter(pc.equal(stream["event_type"], "purchase"))
    ltv = purchases.group_by("customer_id").aggregate([("amount", "sum")])["amount_sum"]
    assert pc.max(ltv).as_py() > 10_000  # a whale
    assert pc.approximate_median(ltv).as_py() < 500
    flags = set(pc.list_flatten(purchases["flags"]).to_pylist())
    assert flags == {"gift", "b2b", "coupon"}
    products = set(pc.list_flatten(purchases["product_ids"]).to_pylist())
    assert {"standard_plan", "premium_plan", "p0001"} <= products
    categories = set(pc.list_flatten(purchases["categories"]).to_pylist())
    assert {"kitchen", "tableware", "subscriptions"} <= categories


def test_int_ids_and_traits() -> None:
    batch = next(generate.purchase_events(50, 100, id_type="int"))
    assert batch.schema.field("customer_id").type == pa.int64()
    traits = generate.traits_table(50)
    assert traits.column_names == ["customer_id", "industry", "company_size", "newsletter"]
    assert traits["customer_id"][41].as_py() == "c000042"


def test_json_messages_mix_both_forms() -> None:
    messages = [json.loads(m) for m in generate.json_messages(100, 2_000, traits=True)]
    assert len(messages) == 2_100
    assert {m.get("type") for m in messages} >= {"track", "identify", "traits", None}
    events = {m["event"] for m in messages if m.get("type") == "track"}
    assert {"Order Completed", "Order Refunded", "Page View"} <= events
