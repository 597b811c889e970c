"""Conversions and uplift (docs/measure.md).

(a) a hand-built history with known holdout members, conversions just inside and just
    outside the window, a refund, a backlash signal and an immature entry gives exactly
    the table worked out by hand;
(b) for random histories and batchings, the table equals a plain-Python recomputation
    from the changes the engine emitted and the events it was given;
(c) checkpoints keep every counter and open window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import segstream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z

COLUMNS = [
    "segment",
    "treatment_entries",
    "holdout_entries",
    "treatment_conversions",
    "holdout_conversions",
    "treatment_rate",
    "holdout_rate",
    "lift",
    "relative_lift",
    "lift_ci_low",
    "lift_ci_high",
    "p_value",
    "treatment_revenue",
    "holdout_revenue",
    "revenue_per_treated",
    "revenue_per_holdout",
    "incremental_revenue",
    "treatment_backlash_rate",
    "holdout_backlash_rate",
    "immature_entries",
]

KITCHEN = """
segments:
  - name: kitchen
    rule: purchases(category => 'kitchen') >= 1
    holdout: 50
    conversion: {within: 14 days, category: tableware}
    backlash: {event: unsubscribe, within: 14 days}
"""

SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("event_type", pa.string()),
        ("amount", pa.float64()),
        ("categories", pa.list_(pa.string())),
    ]
)


Row = tuple[str, int, str, float, list[str]]


def table(rows: Sequence[Row]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    arrays = [pa.array(list(c), f.type) for c, f in zip(cols, SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def held_out(ids: Sequence[str], segment: str = "kitchen", rules: str = KITCHEN) -> dict[str, bool]:
    """Each id's holdout flag in `segment`, as the changes table reports it."""
    e = segstream.Engine(rules)
    rows = [(c, T0, "purchase", 1.0, ["kitchen"]) for c in ids]
    out = e.ingest(table(rows)).changes.to_pylist()
    return {r["customer_id"]: r["holdout"] for r in out if r["segment"] == segment}


def pick_groups(treated: int, held: int) -> tuple[list[str], list[str]]:
    flags = held_out([f"c{i}" for i in range(40)])
    t = [c for c, h in flags.items() if not h][:treated]
    h = [c for c, h in flags.items() if h][:held]
    assert len(t) == treated and len(h) == held
    return t, h


def test_uplift_columns_are_exactly_the_issues() -> None:
    e = segstream.Engine(KITCHEN)
    u = e.uplift(T0, T0 + DAY)
    assert u.column_names == COLUMNS
    assert u.to_pylist()[0]["treatment_entries"] == 0
    assert pa.types.is_decimal(u.schema.field("treatment_revenue").type)
    assert pa.types.is_decimal(u.schema.field("incremental_revenue").type)


def test_hand_built_history_gives_the_table_worked_out_by_hand() -> None:
    (t1, t2, t3, t4), (h1, h2) = pick_groups(4, 2)
    e = segstream.Engine(KITCHEN)
    # Day 0, 10:00: five customers enter (the clock is the batch's latest event).
    at = T0 + 10 * HOUR
    entered = e.ingest(table([(c, at, "purchase", 5.0, ["kitchen"]) for c in (t1, t2, t3, h1, h2)]))
    assert sorted(entered.changes.column("customer_id").to_pylist()) == sorted([t1, t2, t3, h1, h2])
    history = [
        (t3, at + 1 * DAY, "unsubscribe", 0.0, []),  # backlash
        (t3, at + 2 * DAY, "purchase", 80.0, ["tableware"]),
        (t3, at + 3 * DAY, "refund", 20.0, ["tableware"]),  # net 60
        (h1, at + 5 * DAY, "purchase", 10.0, ["tableware"]),
        (t2, at + 6 * DAY, "purchase", 99.0, ["garden"]),  # does not match the filter
        (t4, at + 10 * DAY, "purchase", 5.0, ["kitchen"]),  # enters late: immature
        (t1, at + 14 * DAY, "purchase", 50.0, ["tableware"]),  # the window's last instant
        (t2, at + 14 * DAY + 1, "purchase", 30.0, ["tableware"]),  # one ms too late
    ]
    for row in history:
        e.ingest(table([row]))
    [u] = e.uplift(T0, T0 + 30 * DAY).to_pylist()
    assert u["segment"] == "kitchen"
    assert (u["treatment_entries"], u["holdout_entries"]) == (3, 2)
    assert (u["treatment_conversions"], u["holdout_conversions"]) == (2, 1)
    assert u["treatment_rate"] == pytest.approx(2 / 3)
    assert u["holdout_rate"] == pytest.approx(1 / 2)
    assert u["lift"] == pytest.approx(1 / 6)
    assert u["relative_lift"] == pytest.approx(1 / 3)
    se = math.sqrt((2 / 3) * (1 / 3) / 3 + 0.25 / 2)
    assert u["lift_ci_low"] == pytest.approx(1 / 6 - 1.959963984540054 * se)
    assert u["lift_ci_high"] == pytest.approx(1 / 6 + 1.959963984540054 * se)
    pooled = 3 / 5
    z = (1 / 6) / math.sqrt(pooled * (1 - pooled) * (1 / 3 + 1 / 2))
    assert u["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert u["treatment_revenue"] == Decimal("110.00")
    assert u["holdout_revenue"] == Decimal("10.00")
    assert u["revenue_per_treated"] == Decimal("36.6667")
    assert u["revenue_per_holdout"] == Decimal("5.0000")
    assert u["incremental_revenue"] == Decimal("95.0000")  # 110 - 10 * 3 / 2
    assert u["treatment_backlash_rate"] == pytest.approx(1 / 3)
    assert u["holdout_backlash_rate"] == 0.0
    assert u["immature_entries"] == 1
    # The period picks entries by their day: day 0 alone has no immature entry; from
    # day 1 on there is only t4's, still open.
    [day0] = e.uplift(T0, T0 + DAY).to_pylist()
    assert (day0["treatment_entries"], day0["immature_entries"]) == (3, 0)
    [later] = e.uplift(T0 + DAY, T0 + 30 * DAY).to_pylist()
    assert later["treatment_entries"] + later["holdout_entries"] == 0
    assert later["immature_entries"] == 1
    assert later["lift"] is None and later["revenue_per_treated"] is None
    # Once the clock passes the end of t4's window it counts, unconverted.
    e.advance_to(at + 24 * DAY + 1)
    [after] = e.uplift(T0, T0 + 30 * DAY).to_pylist()
    assert (after["treatment_entries"], after["immature_entries"]) == (4, 0)
    assert after["treatment_conversions"] == 2


def test_checkpoint_keeps_counters_and_open_windows(tmp_path: Path) -> None:
    (t1, t2), (h1,) = pick_groups(2, 1)
    e = segstream.Engine(KITCHEN)
    e.ingest(table([(c, T0, "purchase", 5.0, ["kitchen"]) for c in (t1, h1)]))
    e.ingest(table([(t1, T0 + DAY, "purchase", 7.0, ["tableware"])]))
    e.ingest(table([(t2, T0 + 20 * DAY, "purchase", 5.0, ["kitchen"])]))  # closes day 0's windows
    path = tmp_path / "c.arrow"
    e.save(path)
    loaded = segstream.Engine.load(path)
    assert loaded.uplift(T0, T0 + 40 * DAY) == e.uplift(T0, T0 + 40 * DAY)
    # t2's window is still open after the load: a conversion in it still counts.
    for engine in (e, loaded):
        engine.ingest(table([(t2, T0 + 21 * DAY, "purchase", 3.0, ["tableware"])]))
        engine.advance_to(T0 + 40 * DAY)
    [a], [b] = e.uplift(T0, T0 + 40 * DAY).to_pylist(), loaded.uplift(T0, T0 + 40 * DAY).to_pylist()
    assert a == b
    assert (a["treatment_entries"], a["treatment_conversions"]) == (2, 2)
    assert a["treatment_revenue"] == Decimal("10.00")


def test_bad_periods_and_specs_are_clear_errors() -> None:
    e = segstream.Engine(KITCHEN)
    with pytest.raises(segstream.InvalidInputError, match="UTC midnight"):
        e.uplift(T0 + HOUR, T0 + DAY)
    with pytest.raises(segstream.InvalidInputError, match="after end"):
        e.uplift(T0 + DAY, T0)
    bad = {
        "needs a `conversion`": "backlash: {event: unsubscribe, within: 3 days}",
        "must be positive": "conversion: {within: 0 days}",
        "filter purchases": "conversion: {within: 3 days, event: signup, category: x}",
        "cannot be a refund": "conversion: {within: 3 days, event: refund}",
        "must name a signal": (
            "conversion: {within: 3 days}\n    backlash: {event: purchase, within: 1 day}"
        ),
        "unknown field": "conversion: {within: 3 days, categry: x}",
    }
    for message, keys in bad.items():
        rules = f"segments:\n  - name: s\n    rule: orders >= 1\n    {keys}\n"
        with pytest.raises(segstream.RuleError, match=message):
            segstream.Engine(rules)


# -- (b) against a plain-Python recomputation ------------------------------------------------

RANDOM_RULES = """
segments:
  - name: kitchen
    rule: purchases(category => 'kitchen') >= 1
    holdout: 50
    conversion: {within: 5 days, category: tableware}
    backlash: {event: unsubscribe, within: 3 days}
  - name: lapsed
    rule: orders >= 1 AND last_purchase_at <= now() - INTERVAL '4 days'
    holdout: 30
    conversion: {within: 6 days}
  - name: browsers
    rule: events('page_view', within => INTERVAL '2 days') >= 1
    holdout: 50
    conversion: {within: 2 days, event: signup}
"""

SPECS: dict[str, dict[str, Any]] = {
    "kitchen": {
        "within": 5 * DAY,
        "kind": "purchase",
        "category": "tableware",
        "backlash": ("unsubscribe", 3 * DAY),
    },
    "lapsed": {"within": 6 * DAY, "kind": "purchase", "category": None, "backlash": None},
    "browsers": {"within": 2 * DAY, "kind": "signup", "category": None, "backlash": None},
}

KINDS = ["purchase", "purchase", "refund", "page_view", "signup", "unsubscribe"]
CATS = ["kitchen", "tableware", "garden"]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Row], list[int]]:
    n = draw(st.integers(1, 40))
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(KINDS))
        money = kind in ("purchase", "refund")
        rows.append(
            (
                f"c{draw(st.integers(0, 5))}",
                T0 + draw(st.integers(0, 30 * 24)) * HOUR,
                kind,
                draw(st.integers(0, 5000)) / 100 if money else 0.0,
                draw(st.lists(st.sampled_from(CATS), max_size=2)) if money else [],
            )
        )
    rows.sort(key=lambda r: r[1])  # history in event-time order, batched at random
    cuts = sorted(set(draw(st.lists(st.integers(1, n), max_size=6))))
    return rows, cuts


def recompute(
    changes: list[dict[str, Any]], events: list[Row], clock: int
) -> dict[str, dict[str, Any]]:
    """The uplift counters from the entries in `changes` and the events, by the
    definitions of docs/measure.md (every entry; the periods cover all days)."""
    out: dict[str, dict[str, Any]] = {
        s: {"n": [0, 0], "x": [0, 0], "rev": [0, 0], "back": [0, 0], "immature": 0} for s in SPECS
    }
    for ch in changes:
        if ch["change"] != "enter" or ch["segment"] not in SPECS:
            continue
        spec = SPECS[ch["segment"]]
        at = int(ch["at"].timestamp() * 1000)
        g = int(ch["holdout"])
        close = at + max(spec["within"], spec["backlash"][1] if spec["backlash"] else 0)
        o = out[ch["segment"]]
        if close >= clock:
            o["immature"] += 1
            continue
        mine = [e for e in events if e[0] == ch["customer_id"] and at < e[1]]
        in_window = [e for e in mine if e[1] <= at + spec["within"]]
        if spec["kind"] == "purchase":
            fits = [e for e in in_window if spec["category"] is None or spec["category"] in e[4]]
            bought = [e for e in fits if e[2] == "purchase"]
            refunded = [e for e in fits if e[2] == "refund"]
            cents = sum(round(e[3] * 100) for e in bought) - sum(
                round(e[3] * 100) for e in refunded
            )
            o["x"][g] += bool(bought)
            o["rev"][g] += cents
        else:
            o["x"][g] += any(e[2] == spec["kind"] for e in in_window)
        if spec["backlash"]:
            name, within = spec["backlash"]
            o["back"][g] += any(e[2] == name and e[1] <= at + within for e in mine)
        o["n"][g] += 1
    return out


@given(histories())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_counters_equal_a_recomputation_from_changes_and_events(
    history: tuple[list[Row], list[int]],
) -> None:
    rows, cuts = history
    e = segstream.Engine(RANDOM_RULES)
    changes: list[dict[str, Any]] = []
    for lo, hi in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        if lo < hi:
            changes += e.ingest(table(rows[lo:hi])).changes.to_pylist()
    changes += e.advance_to(T0 + 33 * DAY).to_pylist()
    clock = e.clock_ms
    assert clock is not None
    want = recompute(changes, rows, clock)
    got = {r["segment"]: r for r in e.uplift(T0 - DAY, T0 + 40 * DAY).to_pylist()}
    cent = Decimal("0.01")
    for seg, w in want.items():
        g = got[seg]
        assert (g["treatment_entries"], g["holdout_entries"]) == tuple(w["n"]), seg
        assert (g["treatment_conversions"], g["holdout_conversions"]) == tuple(w["x"]), seg
        assert g["treatment_revenue"] == Decimal(w["rev"][0]) * cent, seg
        assert g["holdout_revenue"] == Decimal(w["rev"][1]) * cent, seg
        assert g["immature_entries"] == w["immature"], seg
        for i, col in enumerate(("treatment_backlash_rate", "holdout_backlash_rate")):
            expect = w["back"][i] / w["n"][i] if w["n"][i] else None
            assert g[col] == (pytest.approx(expect) if expect is not None else None), seg
        if w["n"][0] and w["n"][1]:
            per_t = Decimal(w["rev"][0]) / w["n"][0]
            per_h = Decimal(w["rev"][1]) / w["n"][1]
            quant = Decimal("0.0001")
            assert g["revenue_per_treated"] == (per_t * cent).quantize(quant, ROUND_HALF_UP)
            assert g["revenue_per_holdout"] == (per_h * cent).quantize(quant, ROUND_HALF_UP)
            rev_t, rev_h = Decimal(w["rev"][0]), Decimal(w["rev"][1])
            incremental = (rev_t - rev_h * w["n"][0] / w["n"][1]) * cent
            assert g["incremental_revenue"] == incremental.quantize(quant, ROUND_HALF_UP)
