"""The seed scenarios of docs/rules.md, end to end through `segstream.Engine`.

Each test loads the scenario's rule set from examples/rules/, feeds a small history built
by hand, moves the clock where the scenario depends on time, and checks exactly who
enters and leaves which segment, when, and why (the `changes` rows). Events of one
instant go in one `ingest` call, so the engine clock (latest event time, no allowed
lateness in these rule sets) is the time of the change.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pytest
import segstream

RULES = Path(__file__).resolve().parents[1] / "examples" / "rules"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)

SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("event_type", pa.string()),
        ("amount", pa.float64()),
        ("order_id", pa.string()),
        ("product_ids", pa.list_(pa.string())),
        ("categories", pa.list_(pa.string())),
        ("quantity", pa.int64()),
        ("event_id", pa.string()),
        ("flags", pa.list_(pa.string())),
    ]
)
_event_ids = itertools.count(1)


def day(n: float) -> datetime:
    """Midnight UTC, `n` days after 2024-01-01."""
    return T0 + timedelta(days=n)


def ev(
    customer: str,
    at: datetime,
    event_type: str = "purchase",
    amount: float | None = None,
    *,
    order: str | None = None,
    products: Iterable[str] = (),
    categories: Iterable[str] = (),
    quantity: int | None = None,
    flags: Iterable[str] = (),
) -> dict[str, Any]:
    """One event row; purchases default to $10 and one item."""
    money = event_type in ("purchase", "refund")
    return {
        "customer_id": customer,
        "ts": at,
        "event_type": event_type,
        "amount": (10.0 if amount is None else amount) if money else amount,
        "order_id": order,
        "product_ids": list(products),
        "categories": list(categories),
        "quantity": (1 if quantity is None else quantity) if event_type == "purchase" else quantity,
        "event_id": f"e{next(_event_ids)}",
        "flags": list(flags),
    }


def table(*events: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(events), schema=SCHEMA)


def load(scenario: str) -> segstream.Engine:
    return segstream.Engine(str(RULES / f"{scenario}.yaml"))


class Change(NamedTuple):
    customer_id: str
    segment: str
    change: str
    at: datetime
    cause: str


class Move(NamedTuple):
    """A lifecycle change."""

    customer_id: str
    change: str
    from_stage: str | None
    to_stage: str | None
    at: datetime
    cause: str


def changes(table: pa.Table, *segments: str) -> list[Change]:
    """The segment changes in `table` (of `segments`, if given), in time order."""
    out = [
        Change(r["customer_id"], r["segment"], r["change"], r["at"], r["cause"])
        for r in table.to_pylist()
        if not segments or r["segment"] in segments
    ]
    return sorted(out, key=lambda c: (c.at, c.customer_id, c.segment, c.change))


def moves(table: pa.Table, lifecycle: str) -> list[Move]:
    """The changes of one lifecycle in `table`, in time order."""
    out = [
        Move(r["customer_id"], r["change"], r["from_stage"], r["to_stage"], r["at"], r["cause"])
        for r in table.to_pylist()
        if r["segment"] == lifecycle
    ]
    return sorted(out, key=lambda m: (m.at, m.customer_id))


def ingest(engine: segstream.Engine, *events: dict[str, Any]) -> pa.Table:
    result = engine.ingest(table(*events))
    assert result.rejected.num_rows == 0, result.rejected.to_pylist()
    return result.changes


def members(engine: segstream.Engine, segment: str) -> list[str]:
    return sorted(engine.members(segment).to_pylist())


# -- 1. VIP tiers --------------------------------------------------------------------------


def test_vip_tiers_progress_with_spend_and_regress_with_refunds() -> None:
    engine = load("vip_tiers")
    got = moves(
        ingest(
            engine,
            ev("c1", day(1), amount=1200, order="o1"),
            ev("c2", day(1), amount=50, order="o2"),
            ev("c3", day(1), amount=10_000.00, order="o3"),  # exactly the gold threshold
            ev("c4", day(1), amount=9_999.99, order="o4"),  # one cent short of it
        ),
        "vip_tier",
    )
    assert got == [
        Move("c1", "enter", None, "bronze", day(1), "event"),
        Move("c2", "enter", None, "regular", day(1), "event"),
        Move("c3", "enter", None, "gold", day(1), "event"),
        Move("c4", "enter", None, "silver", day(1), "event"),
    ]
    assert moves(ingest(engine, ev("c1", day(2), amount=4000, order="o5")), "vip_tier") == [
        Move("c1", "progress", "bronze", "silver", day(2), "event")
    ]
    assert moves(ingest(engine, ev("c1", day(3), amount=5000, order="o6")), "vip_tier") == [
        Move("c1", "progress", "silver", "gold", day(3), "event")
    ]
    # A refund lowers ltv but not the order count: c2 stays a regular customer.
    assert ingest(engine, ev("c2", day(5), "refund", 50, order="o2")).num_rows == 0
    assert moves(ingest(engine, ev("c1", day(10), "refund", 4000, order="o5")), "vip_tier") == [
        Move("c1", "regress", "gold", "silver", day(10), "event")
    ]
    # Money is exact: one cent refunded drops c3 below $10,000.
    assert moves(ingest(engine, ev("c3", day(11), "refund", 0.01, order="o3")), "vip_tier") == [
        Move("c3", "regress", "gold", "silver", day(11), "event")
    ]
    tiers = {stage: n for stage, n in engine.stats()["vip_tier"].items() if n}
    assert tiers == {"silver": 3, "regular": 1}
    assert engine.profile("c1")["stages"] == {"vip_tier": "silver"}
    assert engine.profile("c2")["stages"] == {"vip_tier": "regular"}


# -- 2. Category cross-sell ----------------------------------------------------------------


def kitchen(customer: str, at: datetime) -> dict[str, Any]:
    return ev(customer, at, products=["p_pan"], categories=["kitchen"])


def tableware(customer: str, at: datetime) -> dict[str, Any]:
    return ev(customer, at, products=["p_plate"], categories=["tableware"])


def electronics(customer: str, at: datetime) -> dict[str, Any]:
    return ev(customer, at, products=["p_radio"], categories=["electronics"])


def test_cross_sell_enters_30_days_after_the_last_kitchen_purchase() -> None:
    engine = load("cross_sell")
    seg = "cross_sell_tableware"
    day0 = [kitchen(c, day(0)) for c in ("a", "b", "c", "d")] + [electronics("e", day(0))]
    assert ingest(engine, *day0).num_rows == 0
    assert ingest(engine, tableware("b", day(10))).num_rows == 0  # b has both: never
    assert ingest(engine, kitchen("c", day(20))).num_rows == 0  # c's clock restarts
    assert ingest(engine, electronics("d", day(25))).num_rows == 0  # not kitchen: d's does not
    assert engine.advance_to(day(30) - MS).num_rows == 0
    assert changes(engine.advance_to(day(40))) == [
        Change("a", seg, "enter", day(30), "time"),
        Change("d", seg, "enter", day(30), "time"),
    ]
    assert changes(ingest(engine, tableware("a", day(45)))) == [
        Change("a", seg, "exit", day(45), "event")
    ]
    assert changes(engine.advance_to(day(60))) == [Change("c", seg, "enter", day(50), "time")]
    assert members(engine, seg) == ["c", "d"]


def test_events_of_others_that_move_the_clock_fire_the_timers_due_before_them() -> None:
    engine = load("cross_sell")
    seg = "cross_sell_tableware"
    ingest(engine, kitchen("f", day(0)), kitchen("g", day(0)))
    # f and g are due at day 30; an event of another customer at day 35 moves the clock past it.
    assert changes(ingest(engine, electronics("x", day(35)))) == [
        Change("f", seg, "enter", day(30), "time"),
        Change("g", seg, "enter", day(30), "time"),
    ]


def test_a_customers_own_later_event_comes_after_their_due_timer() -> None:
    # docs/rules.md, Time: clock movement re-evaluates the customers that are due "at the
    # instant they are due". An event at day 40 cannot undo what time did at day 30.
    engine = load("cross_sell")
    seg = "cross_sell_tableware"
    ingest(engine, kitchen("h", day(0)), kitchen("k", day(0)))
    assert changes(ingest(engine, electronics("h", day(40)), tableware("k", day(40)))) == [
        Change("h", seg, "enter", day(30), "time"),
        Change("k", seg, "enter", day(30), "time"),
        Change("k", seg, "exit", day(40), "event"),
    ]
    # The same for a dormant customer who comes back: dormant from day 100 to day 200.
    engine = load("dormant")
    ingest(engine, ev("d", day(0)))
    ingest(engine, ev("d", day(10)))
    assert changes(ingest(engine, ev("d", day(200)))) == [
        Change("d", "dormant", "enter", day(100), "time"),
        Change("d", "dormant", "exit", day(200), "event"),
    ]


# -- 3. Product upsell ---------------------------------------------------------------------


def plan(customer: str, at: datetime, product: str = "standard_plan") -> dict[str, Any]:
    return ev(customer, at, amount=99.0, products=[product], categories=["subscriptions"])


def test_upsell_checks_in_at_60_days_and_offers_premium_at_90() -> None:
    engine = load("upsell")
    assert ingest(engine, plan("s1", day(0)), plan("s2", day(0)), plan("s3", day(0))).num_rows == 0
    assert ingest(engine, plan("s2", day(30), "premium_plan")).num_rows == 0
    assert ingest(engine, plan("s3", day(50))).num_rows == 0  # a renewal: first purchase stays
    assert changes(engine.advance_to(day(95))) == [
        Change("s1", "plan_checkin", "enter", day(60), "time"),
        Change("s3", "plan_checkin", "enter", day(60), "time"),
        Change("s1", "plan_checkin", "exit", day(90), "time"),
        Change("s1", "premium_offer", "enter", day(90), "time"),
        Change("s3", "plan_checkin", "exit", day(90), "time"),
        Change("s3", "premium_offer", "enter", day(90), "time"),
    ]
    assert changes(ingest(engine, plan("s1", day(100), "premium_plan"))) == [
        Change("s1", "premium_offer", "exit", day(100), "event")
    ]
    assert engine.advance_to(day(400)).num_rows == 0
    assert members(engine, "premium_offer") == ["s3"]
    assert members(engine, "plan_checkin") == []


# -- 4. Dormant re-engagement --------------------------------------------------------------


def test_dormant_enters_by_time_alone_at_last_purchase_plus_90_days() -> None:
    engine = load("dormant")
    ingest(engine, ev("d1", day(0)), ev("d2", day(0)), ev("d3", day(0)))
    ingest(engine, ev("d1", day(10)))
    ingest(engine, ev("d3", day(50)))
    assert engine.advance_to(day(100) - MS).num_rows == 0
    assert changes(engine.advance_to(day(100))) == [
        Change("d1", "dormant", "enter", day(100), "time")
    ]
    assert engine.clock == day(100)
    assert changes(ingest(engine, ev("d1", day(130)))) == [
        Change("d1", "dormant", "exit", day(130), "event")
    ]
    assert changes(engine.advance_to(day(300))) == [
        Change("d3", "dormant", "enter", day(140), "time"),
        Change("d1", "dormant", "enter", day(220), "time"),
    ]
    assert members(engine, "dormant") == ["d1", "d3"]  # d2 has one order only


# -- 5. Replenishment ----------------------------------------------------------------------


def coffee(customer: str, at: datetime, *, quantity: int = 1) -> dict[str, Any]:
    return ev(customer, at, products=["p_coffee"], categories=["grocery"], quantity=quantity)


def test_replenishment_needs_two_orders_within_60_days() -> None:
    engine = load("replenishment")
    seg = "coffee_regulars"
    ingest(
        engine,
        coffee("r1", day(0)),
        coffee("r2", day(0)),
        ev("r3", day(0), products=["p_coffee", "p_filter"], categories=["grocery"]),
        coffee("r4", day(0), quantity=2),  # one order of two bags is one purchase
        coffee("r5", day(0)),
    )
    assert ingest(engine, ev("r3", day(30), products=["p_filter"])).num_rows == 0
    assert changes(ingest(engine, coffee("r1", day(40)), coffee("r5", day(40)))) == [
        Change("r1", seg, "enter", day(40), "event"),
        Change("r5", seg, "enter", day(40), "event"),
    ]
    assert ingest(engine, coffee("r5", day(50))).num_rows == 0
    # `within` counts ts >= now() - 60 days: the day-0 order is still in at day 60 exactly.
    assert engine.advance_to(day(60)).num_rows == 0
    assert changes(engine.advance_to(day(65))) == [Change("r1", seg, "exit", day(60) + MS, "time")]
    assert ingest(engine, coffee("r2", day(70))).num_rows == 0  # 70 days apart
    # r5 keeps two orders in the window (days 40 and 50) until day 40's drops out.
    assert changes(engine.advance_to(day(200))) == [
        Change("r5", seg, "exit", day(100) + MS, "time")
    ]
    assert members(engine, seg) == []


# -- 6. Browsing, first-time, seasonal and high-value customers ---------------------------


def test_frequent_browsers_with_few_purchases() -> None:
    engine = load("engagement")
    seg = "frequent_browsers"
    got: list[Change] = []
    for d in range(10):
        batch = [ev("b1", day(d), "page_view"), ev("b2", day(d), "page_view")]
        batch += [ev("b3", day(d), "page_view")] if d < 9 else []  # b3 stops at nine views
        batch += [ev("b2", day(d))] if d in (1, 2) else []  # b2 has two orders
        got += changes(ingest(engine, *batch), seg)
    assert got == [Change("b1", seg, "enter", day(9), "event")]
    # The day-0 view leaves the 30-day window just after day 30: nine views are not enough.
    assert changes(engine.advance_to(day(40)), seg) == [
        Change("b1", seg, "exit", day(30) + MS, "time")
    ]


def test_recent_first_time_buyers() -> None:
    engine = load("engagement")
    seg = "recent_first_time_buyers"
    assert changes(ingest(engine, ev("f1", day(0)), ev("f2", day(0))), seg) == [
        Change("f1", seg, "enter", day(0), "event"),
        Change("f2", seg, "enter", day(0), "event"),
    ]
    assert changes(ingest(engine, ev("f2", day(10))), seg) == [
        Change("f2", seg, "exit", day(10), "event")
    ]
    assert changes(engine.advance_to(day(40)), seg) == [
        Change("f1", seg, "exit", day(30) + MS, "time")
    ]


def test_seasonal_buyers_are_members_in_the_same_month_a_year_later() -> None:
    engine = load("engagement")
    seg = "seasonal_buyers"
    april, july = datetime(2024, 4, 10, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)
    assert changes(ingest(engine, ev("s1", april)), seg) == []  # April 2023: no purchase
    assert changes(ingest(engine, ev("s2", july)), seg) == []
    assert changes(engine.advance_to(datetime(2025, 4, 1, tzinfo=UTC) - MS), seg) == []
    assert changes(engine.advance_to(datetime(2025, 6, 15, tzinfo=UTC)), seg) == [
        Change("s1", seg, "enter", datetime(2025, 4, 1, tzinfo=UTC), "time"),
        Change("s1", seg, "exit", datetime(2025, 5, 1, tzinfo=UTC), "time"),
    ]
    assert changes(engine.advance_to(datetime(2025, 8, 2, tzinfo=UTC)), seg) == [
        Change("s2", seg, "enter", datetime(2025, 7, 1, tzinfo=UTC), "time"),
        Change("s2", seg, "exit", datetime(2025, 8, 1, tzinfo=UTC), "time"),
    ]


def test_high_value_repeaters() -> None:
    engine = load("engagement")
    seg = "high_value_repeaters"
    got: list[Change] = []
    for d in range(3):
        got += changes(
            ingest(
                engine,
                ev("h1", day(d), amount=150, order=f"h1-{d}"),
                ev("h2", day(d), amount=50),
                ev("h3", day(d), amount=100),  # exactly the threshold
            ),
            seg,
        )
    assert got == [
        Change("h1", seg, "enter", day(2), "event"),
        Change("h3", seg, "enter", day(2), "event"),
    ]
    # aov is net of refunds: (450 - 200) / 3 < 100.
    assert changes(ingest(engine, ev("h1", day(3), "refund", 200, order="h1-0")), seg) == [
        Change("h1", seg, "exit", day(3), "event")
    ]


# -- 7. Gift and business buyers -----------------------------------------------------------


def test_gift_buyers_follow_the_share_of_gift_orders() -> None:
    engine = load("gifts_and_business")
    seg = "gift_buyers"
    assert changes(ingest(engine, ev("g1", day(0), flags=["gift"]), ev("g2", day(0))), seg) == [
        Change("g1", seg, "enter", day(0), "event")
    ]
    assert changes(ingest(engine, ev("g1", day(1), flags=["coupon"])), seg) == [
        Change("g1", seg, "exit", day(1), "event")  # 1 gift of 2 orders is not more than half
    ]
    assert changes(ingest(engine, ev("g1", day(2), flags=["gift", "coupon"])), seg) == [
        Change("g1", seg, "enter", day(2), "event")
    ]


def test_business_buyers_by_quantity_flag_or_company_size() -> None:
    engine = load("gifts_and_business")
    seg = "business_buyers"
    got = changes(
        ingest(
            engine,
            ev("k1", day(0), quantity=25),
            ev("k2", day(0), flags=["b2b"]),
            ev("k3", day(0), quantity=19),
            ev("k4", day(0)),
        ),
        seg,
    )
    assert got == [
        Change("k1", seg, "enter", day(0), "event"),
        Change("k2", seg, "enter", day(0), "event"),
    ]
    ingest(engine, ev("k5", day(2)))  # moves the clock: trait changes happen at clock time
    traits = pa.table({"customer_id": ["k3", "k4"], "company_size": pa.array([20, 250])})
    assert changes(engine.update_traits(traits), seg) == [
        Change("k4", seg, "enter", day(2), "traits")
    ]
    assert members(engine, seg) == ["k1", "k2", "k4"]


# -- 8. Contact traits ---------------------------------------------------------------------


def traits(*rows: tuple[str, str, int, bool]) -> pa.Table:
    return pa.table(
        {
            "customer_id": [r[0] for r in rows],
            "industry": [r[1] for r in rows],
            "company_size": pa.array([r[2] for r in rows], pa.int64()),
            "newsletter": [r[3] for r in rows],
        }
    )


def test_traits_combine_with_behaviour() -> None:
    engine = load("traits")
    assert ingest(engine, ev("t1", day(1)), ev("t2", day(1)), ev("t3", day(1))).num_rows == 0
    got = changes(
        engine.update_traits(
            traits(
                ("t1", "manufacturing", 250, True),
                ("t2", "manufacturing", 50, False),
                ("t3", "retail", 500, True),
                ("t4", "manufacturing", 300, True),  # known from traits only, no orders yet
            )
        )
    )
    assert got == [
        Change("t1", "manufacturing_accounts", "enter", day(1), "traits"),
        Change("t1", "newsletter_buyers", "enter", day(1), "traits"),
        Change("t3", "newsletter_buyers", "enter", day(1), "traits"),
        Change("t4", "newsletter_prospects", "enter", day(1), "traits"),
    ]
    assert changes(ingest(engine, ev("t4", day(5)))) == [
        Change("t4", "manufacturing_accounts", "enter", day(5), "event"),
        Change("t4", "newsletter_buyers", "enter", day(5), "event"),
        Change("t4", "newsletter_prospects", "exit", day(5), "event"),
    ]
    got = changes(
        engine.update_traits(
            traits(("t1", "manufacturing", 250, False), ("t2", "manufacturing", 120, False))
        )
    )
    assert got == [
        Change("t1", "newsletter_buyers", "exit", day(5), "traits"),
        Change("t2", "manufacturing_accounts", "enter", day(5), "traits"),
    ]
    assert members(engine, "manufacturing_accounts") == ["t1", "t2", "t4"]


# -- 9. Suppression ------------------------------------------------------------------------


def test_suppression_holds_offers_back_and_releases_them_in_time() -> None:
    engine = load("suppression")
    offer = "loyalty_offer"
    got = changes(
        ingest(
            engine,
            ev("s1", day(0), amount=600, order="o1"),
            ev("s2", day(0), amount=700),
            ev("s3", day(0), amount=800),
        )
    )
    assert got == [Change(c, offer, "enter", day(0), "event") for c in ("s1", "s2", "s3")]

    def suppressed_by(reason: str, customer: str, at: datetime, cause: str) -> list[Change]:
        return [
            Change(customer, offer, "enter" if cause == "time" else "exit", at, cause),
            Change(customer, reason, "exit" if cause == "time" else "enter", at, cause),
            Change(customer, "suppressed", "exit" if cause == "time" else "enter", at, cause),
        ]

    assert changes(ingest(engine, ev("s1", day(5), "refund", 100, order="o1"))) == (
        suppressed_by("recent_refund", "s1", day(5), "event")
    )
    assert changes(ingest(engine, ev("s2", day(10), "support_case"))) == (
        suppressed_by("open_support_case", "s2", day(10), "event")
    )
    assert changes(ingest(engine, ev("s3", day(20), "offer_sent"))) == (
        suppressed_by("recently_contacted", "s3", day(20), "event")
    )
    assert members(engine, offer) == []
    assert changes(engine.advance_to(day(60))) == (
        suppressed_by("recently_contacted", "s3", day(27) + MS, "time")
        + suppressed_by("recent_refund", "s1", day(35) + MS, "time")
        + suppressed_by("open_support_case", "s2", day(40) + MS, "time")
    )
    assert members(engine, offer) == ["s1", "s2", "s3"]


# -- Holdout and cooldown ------------------------------------------------------------------


def _holdout_run(salt: str | None) -> dict[str, set[str]]:
    """Held-out customers per segment, for 2,000 one-time buyers."""
    rules: dict[str, Any] = {
        "segments": [
            {"name": "buyers", "rule": "orders >= 1", "holdout": 10},
            {"name": "buyers_too", "rule": "orders >= 1", "holdout": 10},
            {"name": "all_buyers", "rule": "orders >= 1"},
        ]
    }
    if salt is not None:
        rules["holdout_salt"] = salt
    engine = segstream.Engine(rules)
    result = ingest(engine, *(ev(f"h{i:04d}", day(0)) for i in range(2_000)))
    rows = result.to_pylist()
    assert len(rows) == 3 * 2_000  # held-out customers still enter, flagged
    held: dict[str, set[str]] = {"buyers": set(), "buyers_too": set(), "all_buyers": set()}
    for r in rows:
        if r["holdout"]:
            held[r["segment"]].add(r["customer_id"])
    return held


def test_holdout_is_a_deterministic_share_per_segment() -> None:
    held = _holdout_run(None)
    assert 140 <= len(held["buyers"]) <= 260  # 10% of 2,000, give or take
    assert 140 <= len(held["buyers_too"]) <= 260
    assert held["all_buyers"] == set()  # no holdout configured
    assert held["buyers"] != held["buyers_too"]  # the segment name is part of the hash
    assert _holdout_run(None) == held  # the same on every run
    reshuffled = _holdout_run("2024-q3")
    assert reshuffled["buyers"] != held["buyers"]
    assert 140 <= len(reshuffled["buyers"]) <= 260


def _recent_buyers(cooldown: str) -> segstream.Engine:
    rule = "last_purchase_at >= now() - INTERVAL '7 days'"
    return segstream.Engine({"segments": [{"name": "recent", "rule": rule, "cooldown": cooldown}]})


def test_cooldown_blocks_a_new_enter_soon_after_an_exit() -> None:
    engine = _recent_buyers("30 days")
    assert changes(ingest(engine, ev("c", day(0)))) == [
        Change("c", "recent", "enter", day(0), "event")
    ]
    assert changes(engine.advance_to(day(8))) == [
        Change("c", "recent", "exit", day(7) + MS, "time")
    ]
    assert ingest(engine, ev("c", day(10))).num_rows == 0  # qualifies again, but cooling down
    assert members(engine, "recent") == []
    assert engine.advance_to(day(39)).num_rows == 0
    assert changes(ingest(engine, ev("c", day(40)))) == [
        Change("c", "recent", "enter", day(40), "event")
    ]


def test_cooldown_ending_while_the_rule_holds_enters_then() -> None:
    engine = _recent_buyers("5 days")
    ingest(engine, ev("c", day(0)))
    engine.advance_to(day(8))  # exit at day 7 + 1 ms; cooling down until day 12 + 1 ms
    assert ingest(engine, ev("c", day(10))).num_rows == 0
    got = changes(engine.advance_to(day(30)))
    assert [(c.change, c.cause) for c in got] == [("enter", "time"), ("exit", "time")]
    assert day(12) <= got[0].at <= day(12) + 2 * MS
    assert got[1].at == day(17) + MS


@pytest.mark.parametrize("path", sorted(RULES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_rule_set_loads(path: Path) -> None:
    segstream.Engine(str(path))
