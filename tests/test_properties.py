"""Properties of the engine, checked with hypothesis against tests/reference.py.

(a) order and batching of the same events do not matter;
(b) memberships equal those of the plain-Python reference evaluator;
(c) advancing the clock in steps equals one advance to the same time;
(d) a checkpoint round trip changes nothing, now or later.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import reference as ref
import segstream
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DAY = ref.DAY_MS
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
RETAIL = Path(__file__).resolve().parents[1] / "examples" / "rules" / "retail.yaml"
BIG_LATENESS = 100_000

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
DECIMAL_SCHEMA = SCHEMA.set(
    SCHEMA.get_field_index("amount"), pa.field("amount", pa.decimal128(12, 2))
)


def fast(examples: int) -> settings:
    """`examples` examples (times $SEGSTREAM_EXAMPLES_SCALE, for a longer hunt), no deadline."""
    scale = float(os.environ.get("SEGSTREAM_EXAMPLES_SCALE", "1"))
    return settings(
        max_examples=max(1, int(examples * scale)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


# -- strategies ----------------------------------------------------------------------------

CUSTOMERS = [f"c{i}" for i in range(5)]
CATEGORIES = ["x", "y", "z"]
SIGNALS = ["page_view", "support_case", "offer_sent"]
DAYS = st.sampled_from([1, 2, 3, 7, 10, 30])
OPS = st.sampled_from(list(ref.OPS))

timestamps = st.builds(
    lambda day, offset: T0 + day * DAY + offset,
    st.integers(0, 40),
    st.sampled_from([0, 0, 1, -1]) | st.integers(0, DAY - 1),
)
AMOUNT_POINTS = st.sampled_from([0, 1, 999, 1000, 1001, 5000, 12345])
cents = st.one_of(AMOUNT_POINTS, AMOUNT_POINTS, st.integers(0, 300_000))  # 2:1 for the points


@st.composite
def one_event(draw: st.DrawFn) -> ref.Event:
    kind = draw(st.sampled_from(["purchase"] * 4 + ["refund"] * 2 + SIGNALS))
    money = kind in ("purchase", "refund")
    return ref.Event(
        customer_id=draw(st.sampled_from(CUSTOMERS)),
        ts=draw(timestamps),
        event_type=kind,
        cents=draw(cents) if money else None,
        categories=tuple(draw(st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True))),
        products=tuple(
            draw(
                st.lists(
                    st.sampled_from(["p0001", "p2", "standard_plan", "premium_plan"]),
                    max_size=2,
                    unique=True,
                )
            )
            if kind != "refund"
            else ()
        ),
        flags=tuple(draw(st.lists(st.sampled_from(["gift", "b2b"]), max_size=1))),
        quantity=draw(st.none() | st.integers(1, 25)) if kind == "purchase" else None,
    )


def event_lists(min_size: int = 1, max_size: int = 30) -> st.SearchStrategy[list[ref.Event]]:
    """Events with unique event ids."""
    return st.lists(one_event(), min_size=min_size, max_size=max_size).map(
        lambda es: [ref.Event(**{**e.__dict__, "event_id": f"e{i}"}) for i, e in enumerate(es)]
    )


# Thresholds on and next to the amounts above (and ones that no amount in cents can equal).
MONEY_POINTS = ("0", "0.01", "9.99", "9.999", "10", "10.00", "10.001", "10.01", "-5", "50")
MONEY_POINTS += ("123.45", "123.449", "123.451", "133.45", "133.449", "0.005")
_points = st.sampled_from([Decimal(s) for s in MONEY_POINTS])
money_literals = st.one_of(  # 3:1 for the points
    _points,
    _points,
    _points,
    st.decimals(min_value=-10, max_value=3000, places=3, allow_nan=False, allow_infinity=False),
)

leaves = st.one_of(
    st.builds(ref.Cmp, st.sampled_from(ref.MONEY_FIELDS), OPS, money_literals),
    st.builds(ref.Cmp, st.sampled_from(ref.COUNT_FIELDS), OPS, st.integers(0, 4)),
    st.builds(ref.LastPurchaseBefore, DAYS),
    st.builds(ref.HasCategory, st.sampled_from([*CATEGORIES, "w"])),
    st.builds(ref.Purchases, st.sampled_from(CATEGORIES), DAYS, OPS, st.integers(0, 3)),
    st.builds(ref.Events, st.sampled_from(SIGNALS), DAYS, OPS, st.integers(0, 3)),
    st.builds(
        ref.Spend, st.none() | st.sampled_from(CATEGORIES), st.none() | DAYS, OPS, money_literals
    ),
)
rules = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(ref.And, inner, inner),
        st.builds(ref.Or, inner, inner),
        st.builds(ref.Not, inner),
    ),
    max_leaves=6,
)


# Every customer who sent any event: makes the engine keep all signals, so that customers
# known only from signals exist whatever the other rules use (see
# test_engine.py::test_customer_known_only_from_an_unused_signal).
SEEN_ALL = ref.Or(
    ref.Or(ref.Cmp("orders", ">=", 0), ref.Events("page_view", 100_000, ">=", 0)),
    ref.Or(
        ref.Events("support_case", 100_000, ">=", 0), ref.Events("offer_sent", 100_000, ">=", 0)
    ),
)


@st.composite
def rule_sets(draw: st.DrawFn) -> ref.RuleSet:
    segments = [SEEN_ALL, *draw(st.lists(rules, min_size=1, max_size=4))]
    lifecycles = []
    if draw(st.booleans()):
        stages = draw(st.lists(rules, min_size=1, max_size=3))
        lifecycles.append(("tier", tuple((f"t{i}", r) for i, r in enumerate(stages))))
    return ref.RuleSet(tuple((f"s{i}", r) for i, r in enumerate(segments)), tuple(lifecycles))


def retail_spec(cooldown: bool = True) -> dict[str, Any]:
    """examples/rules/retail.yaml, optionally without cooldowns (which remember the path)."""
    spec: dict[str, Any] = yaml.safe_load(RETAIL.read_text())
    if not cooldown:
        for seg in spec["segments"]:
            seg.pop("cooldown", None)
    return spec


def with_random(spec: dict[str, Any], extra: ref.RuleSet) -> dict[str, Any]:
    """A rule set plus randomly generated segments and lifecycles."""
    more = extra.spec()
    return {
        **spec,
        "segments": spec.get("segments", []) + more["segments"],
        "lifecycles": spec.get("lifecycles", []) + more["lifecycles"],
    }


@st.composite
def batchings(draw: st.DrawFn, n: int) -> list[int]:
    """Cut points splitting `n` events into batches."""
    return sorted(set(draw(st.lists(st.integers(0, n), max_size=4))))


# -- helpers -------------------------------------------------------------------------------


def table(events: list[ref.Event], decimal_amounts: bool = False) -> pa.Table:
    schema = DECIMAL_SCHEMA if decimal_amounts else SCHEMA
    return pa.Table.from_pylist([e.row(decimal_amounts) for e in events], schema=schema)


def ingest_all(
    engine: segstream.Engine,
    events: list[ref.Event],
    cuts: Sequence[int] = (),
    decimal_amounts: bool = False,
) -> list[pa.Table]:
    """Ingests `events` in batches split at `cuts`; returns the changes of each batch."""
    bounds = [0, *cuts, len(events)]
    out = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        if hi <= lo:
            continue
        result = engine.ingest(table(events[lo:hi], decimal_amounts))
        assert result.rejected.num_rows == 0, result.rejected.to_pylist()
        out.append(result.changes)
    return out


def snapshot(engine: segstream.Engine) -> list[dict[str, Any]]:
    return engine.snapshot().sort_by("customer_id").to_pylist()


def members(engine: segstream.Engine, names: list[str]) -> dict[str, list[Any]]:
    return {name: sorted(engine.members(name).to_pylist()) for name in names}


def names(spec: dict[str, Any]) -> list[str]:
    return [s["name"] for s in spec.get("segments", [])] + [
        lc["name"] for lc in spec.get("lifecycles", [])
    ]


def transition_rows(changes: list[pa.Table]) -> list[tuple[Any, ...]]:
    rows = [r for t in changes for r in t.to_pylist()]
    out = [
        (
            r["customer_id"],
            r["segment"],
            r["change"],
            r["from_stage"],
            r["to_stage"],
            ms(r["at"]),
        )
        for r in rows
    ]
    return sorted(out, key=repr)


def ms(dt: Any) -> int | None:
    return None if dt is None else round(dt.timestamp() * 1000)


# -- (a) order and batching ----------------------------------------------------------------


@fast(60)
@given(
    events=event_lists(max_size=40),
    extra=rule_sets(),
    data=st.data(),
    lateness=st.sampled_from(["0 ms", "1 hour", "3 days"]),
    later=st.integers(0, 100 * DAY),
)
def test_order_and_batching_do_not_matter(
    events: list[ref.Event], extra: ref.RuleSet, data: st.DataObject, lateness: str, later: int
) -> None:
    spec = with_random({**retail_spec(cooldown=False), "allowed_lateness": lateness}, extra)
    shuffled = data.draw(st.permutations(events), label="shuffled")
    cuts_a = data.draw(batchings(len(events)), label="cuts_a")
    cuts_b = data.draw(batchings(len(events)), label="cuts_b")
    a, b = segstream.Engine(spec), segstream.Engine(spec)
    ingest_all(a, events, cuts_a)
    ingest_all(b, shuffled, cuts_b)
    assert a.clock_ms == b.clock_ms
    assert snapshot(a) == snapshot(b)
    assert a.stats() == b.stats()
    assert members(a, names(spec)) == members(b, names(spec))

    final = max(e.ts for e in events) + later
    a.advance_to(final)
    b.advance_to(final)
    assert snapshot(a) == snapshot(b)
    assert a.stats() == b.stats()
    assert members(a, names(spec)) == members(b, names(spec))


@fast(60)
@given(
    events=event_lists(max_size=40),
    extra=rule_sets(),
    data=st.data(),
    later=st.integers(0, 100 * DAY),
)
def test_deferred_ingest_and_net_advance_end_in_the_same_memberships(
    events: list[ref.Event], extra: ref.RuleSet, data: st.DataObject, later: int
) -> None:
    """The bulk path (ingest with evaluate=False, then advance_to(net=True)) ends where
    evaluating every batch and replaying every timer does; net changes are the
    difference between the memberships before and after."""
    spec = with_random(retail_spec(cooldown=False), extra)
    cuts_a = data.draw(batchings(len(events)), label="cuts_a")
    cuts_b = data.draw(batchings(len(events)), label="cuts_b")
    exact, bulk = segstream.Engine(spec), segstream.Engine(spec)
    ingest_all(exact, events, cuts_a)
    bounds = [0, *cuts_b, len(events)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        if hi > lo:
            result = bulk.ingest(table(events[lo:hi]), evaluate=False)
            assert result.changes.num_rows == 0
    assert bulk.clock_ms == exact.clock_ms
    assert snapshot(bulk) == snapshot(exact)  # reading settles what was deferred

    final = max(e.ts for e in events) + later
    before = {(r["customer_id"], n): r[n] for r in snapshot(exact) for n in names(spec)}
    exact.advance_to(final)
    net = bulk.advance_to(final, net=True).to_pylist()
    assert snapshot(bulk) == snapshot(exact)
    assert bulk.stats() == exact.stats()
    after = {(r["customer_id"], n): r[n] for r in snapshot(exact) for n in names(spec)}
    moved = {key for key in after if after[key] != before[key]}
    assert {(r["customer_id"], r["segment"]) for r in net} == moved
    assert all(ms(r["at"]) == final for r in net)


@fast(60)
@given(
    events=event_lists(max_size=40),
    extra=rule_sets(),
    data=st.data(),
    shards=st.integers(2, 4),
    later=st.integers(0, 100 * DAY),
)
def test_shards_merge_into_the_engine_that_read_everything(
    events: list[ref.Event], extra: ref.RuleSet, data: st.DataObject, shards: int, later: int
) -> None:
    """Engines fed the same batches with shard=(k, n) hold disjoint customers; merged,
    they are the engine that read every event (the bulk CLI's parallel path)."""
    spec = with_random(retail_spec(cooldown=False), extra)
    cuts = data.draw(batchings(len(events)), label="cuts")
    whole = segstream.Engine(spec)
    parts = [segstream.Engine(spec) for _ in range(shards)]
    bounds = [0, *cuts, len(events)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        if hi <= lo:
            continue
        batch = table(events[lo:hi])
        whole.ingest(batch, evaluate=False)
        for k, part in enumerate(parts):
            part.ingest(batch, evaluate=False, shard=(k, shards))
    final = max(e.ts for e in events) + later
    whole.advance_to(final, net=True)
    for part in parts:
        part.advance_to(final, net=True)
    owners = [set(p.snapshot()["customer_id"].to_pylist()) for p in parts]
    assert sum(len(o) for o in owners) == len(set().union(*owners))  # disjoint
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
        assert part.snapshot().num_rows == 0
    assert merged.clock_ms == whole.clock_ms
    assert snapshot(merged) == snapshot(whole)
    assert merged.stats() == whole.stats()
    assert members(merged, names(spec)) == members(whole, names(spec))


# -- (b) the reference evaluator -----------------------------------------------------------


def check_against_reference(
    engine: segstream.Engine, rs: ref.RuleSet, events: list[ref.Event], now: int
) -> None:
    customers = ref.fold(events)
    expected = ref.memberships(rs, customers, now)
    snap = {row["customer_id"]: row for row in engine.snapshot().to_pylist()}
    assert set(snap) == set(customers)
    for cid, c in customers.items():
        row = snap[cid]
        got = {
            "ltv": row["ltv"],
            "gross_spend": row["gross_spend"],
            "max_order": row["max_order"],
            "orders": row["orders"],
            "refunds": row["refunds"],
            "last_purchase_at": ms(row["last_purchase_at"]),
        }
        want = {
            "ltv": Decimal(c.ltv) * ref.CENT,
            "gross_spend": Decimal(c.gross_spend) * ref.CENT,
            "max_order": None if c.max_order is None else Decimal(c.max_order) * ref.CENT,
            "orders": c.orders,
            "refunds": c.refunds,
            "last_purchase_at": c.last_purchase_at,
        }
        assert got == want, cid
    for name, rule in rs.segments:
        got_members = set(engine.members(name).to_pylist())
        assert got_members == expected[name], (name, ref.to_sql(rule))
    for name, _ in rs.lifecycles:
        got_stages = {cid: row[name] for cid, row in snap.items() if row[name] is not None}
        assert got_stages == expected[name], name


@fast(150)
@given(
    rs=rule_sets(),
    events=event_lists(),
    data=st.data(),
    final_day=st.integers(0, 80),
    final_offset=st.sampled_from([0, 1, -1]) | st.integers(0, DAY - 1),
    decimal_amounts=st.booleans(),
)
def test_memberships_match_reference(
    rs: ref.RuleSet,
    events: list[ref.Event],
    data: st.DataObject,
    final_day: int,
    final_offset: int,
    decimal_amounts: bool,
) -> None:
    engine = segstream.Engine(rs.spec("0 ms"))
    ingest_all(engine, events, data.draw(batchings(len(events))), decimal_amounts)
    max_ts = max(e.ts for e in events)
    assert engine.clock_ms == max_ts
    final = max(max_ts, T0 + final_day * DAY + final_offset)
    engine.advance_to(final)
    assert engine.clock_ms == final
    check_against_reference(engine, rs, events, final)


@fast(80)
@given(
    rs=rule_sets(),
    events=event_lists(),
    lateness_days=st.sampled_from([3, 20, BIG_LATENESS]),
    final_day=st.integers(-5, 80),
    final_offset=st.sampled_from([0, 1, -1]) | st.integers(0, DAY - 1),
)
def test_events_after_the_clock_count_in_windows(
    rs: ref.RuleSet,
    events: list[ref.Event],
    lateness_days: int,
    final_day: int,
    final_offset: int,
) -> None:
    # With allowed lateness the clock runs behind the events: windows have no upper bound.
    engine = segstream.Engine(rs.spec(f"{lateness_days} days"))
    ingest_all(engine, events)
    max_ts = max(e.ts for e in events)
    assert engine.clock_ms == max_ts - lateness_days * DAY
    now = max(max_ts - lateness_days * DAY, T0 + final_day * DAY + final_offset)
    engine.advance_to(now)
    assert engine.clock_ms == now
    check_against_reference(engine, rs, events, now)


# -- (c) steps of the clock ----------------------------------------------------------------


@fast(80)
@given(
    rs=rule_sets(),
    events=event_lists(),
    steps=st.lists(
        st.builds(
            lambda d, o: T0 + d * DAY + o,
            st.integers(-3, 80),
            st.sampled_from([0, 1, -1]) | st.integers(0, DAY - 1),
        ),
        max_size=8,
    ),
    final_day=st.integers(0, 80),
)
def test_stepwise_advance_equals_one_advance(
    rs: ref.RuleSet, events: list[ref.Event], steps: list[int], final_day: int
) -> None:
    spec = rs.spec(f"{BIG_LATENESS} days")
    one, stepped = segstream.Engine(spec), segstream.Engine(spec)
    ingest_all(one, events)
    ingest_all(stepped, events)
    start = max(e.ts for e in events) - BIG_LATENESS * DAY
    assert one.clock_ms == stepped.clock_ms == start
    final = T0 + final_day * DAY

    single = transition_rows([one.advance_to(final)])
    # Steps in random order: a step back in time is refused and changes nothing.
    tables = []
    for t in (t for t in steps if t <= final):
        before = stepped.clock_ms
        if before is not None and t < before:
            with pytest.raises(segstream.InvalidInputError, match="before the engine clock"):
                stepped.advance_to(t)
            assert stepped.clock_ms == before
        else:
            tables.append(stepped.advance_to(t))
    many = transition_rows([*tables, stepped.advance_to(final)])
    assert single == many
    assert one.clock_ms == stepped.clock_ms == final
    assert snapshot(one) == snapshot(stepped)
    assert members(one, names(spec)) == members(stepped, names(spec))
    # And both are exactly what the reference says time does.
    assert single == ref.transitions(rs, events, start, final)
    check_against_reference(one, rs, events, final)


# -- (d) checkpoints -----------------------------------------------------------------------


@fast(40)
@given(
    extra=rule_sets(),
    before=event_lists(max_size=25),
    after=event_lists(min_size=0, max_size=25),
    lateness=st.sampled_from(["0 ms", "1 hour", "3 days"]),
    final_day=st.integers(0, 200),
)
def test_checkpoint_round_trip(
    extra: ref.RuleSet,
    before: list[ref.Event],
    after: list[ref.Event],
    lateness: str,
    final_day: int,
) -> None:
    spec = with_random({**retail_spec(), "allowed_lateness": lateness}, extra)
    # Later events: new ids, so they are not duplicates of the first ones.
    after = [ref.Event(**{**e.__dict__, "event_id": f"late{e.event_id}"}) for e in after]
    engine = segstream.Engine(spec)
    ingest_all(engine, before)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.arrow"
        engine.save(path, offsets={"events/0": len(before)})
        loaded = segstream.Engine.load(path)
        again = segstream.Engine.load(path, rules=spec)
    for other in (loaded, again):
        assert other.source_offsets == {"events/0": len(before)}
        assert other.fingerprint == engine.fingerprint
        assert other.clock_ms == engine.clock_ms
        assert other.pending_timers == engine.pending_timers
        assert snapshot(other) == snapshot(engine)
        assert other.stats() == engine.stats()

    for e in (engine, loaded):
        # Duplicates of already-applied events must be recognised after loading too.
        dup = e.ingest(table(before[:3]))
        assert dup.duplicates == min(3, len(before)) and dup.changes.num_rows == 0
    if after:
        got = [e.ingest(table(after)) for e in (engine, loaded)]
        assert got[0].changes.to_pylist() == got[1].changes.to_pylist()
    final = max(T0 + final_day * DAY, engine.clock_ms or T0)
    assert engine.advance_to(final).to_pylist() == loaded.advance_to(final).to_pylist()
    assert snapshot(loaded) == snapshot(engine)
    assert loaded.stats() == engine.stats()
