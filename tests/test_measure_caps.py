"""Frequency caps across segments (docs/measure.md): a capped third offer, the sliding
period, holdout entries counted alike, determinism on replay, checkpoints, bad specs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import segstream
from test_measure_uplift import DAY, HOUR, T0, Row, table

CAPPED = """
segments:
  - name: kitchen
    rule: purchases(category => 'kitchen', within => INTERVAL '1 day') >= 1
    conversion: {within: 2 days, category: tableware}
  - name: garden
    rule: purchases(category => 'garden', within => INTERVAL '1 day') >= 1
  - name: toys
    rule: purchases(category => 'toys', within => INTERVAL '1 day') >= 1
  - name: uncapped
    rule: orders >= 1
frequency_caps:
  - {name: offers, segments: [kitchen, garden, toys], max: 2, per: 7 days}
"""


def entries(changes: pa.Table) -> list[tuple[str, str, bool]]:
    return [
        (r["customer_id"], r["segment"], r["capped"])
        for r in changes.to_pylist()
        if r["change"] == "enter"
    ]


def test_the_third_offer_in_a_week_is_capped_and_a_later_one_is_not() -> None:
    e = segstream.Engine(CAPPED)
    out = []
    out += entries(e.ingest(table([("a", T0, "purchase", 5.0, ["kitchen"])])).changes)
    out += entries(e.ingest(table([("a", T0 + 2 * DAY, "purchase", 5.0, ["garden"])])).changes)
    out += entries(e.ingest(table([("a", T0 + 4 * DAY, "purchase", 5.0, ["toys"])])).changes)
    # The kitchen offer of day 0 has left the 7-day period by day 7 + 1 ms.
    out += entries(e.ingest(table([("a", T0 + 7 * DAY + 1, "purchase", 5.0, ["kitchen"])])).changes)
    # ... but day 2's and day 7's are both inside the period of day 8.
    out += entries(e.ingest(table([("a", T0 + 8 * DAY + 2, "purchase", 5.0, ["toys"])])).changes)
    assert out == [
        ("a", "kitchen", False),
        ("a", "uncapped", False),
        ("a", "garden", False),
        ("a", "toys", True),
        ("a", "kitchen", False),
        ("a", "toys", True),
    ]
    # Capped entries still make members.
    assert "a" in e.members("toys").to_pylist()


def test_capped_entries_are_no_trials_of_the_offer() -> None:
    e = segstream.Engine(CAPPED)
    e.ingest(table([("b", T0, "purchase", 5.0, ["garden"])]))
    e.ingest(table([("b", T0 + HOUR, "purchase", 5.0, ["toys"])]))
    capped = e.ingest(table([("b", T0 + 2 * HOUR, "purchase", 5.0, ["kitchen"])])).changes
    assert entries(capped) == [("b", "kitchen", True)]
    e.ingest(table([("b", T0 + 3 * HOUR, "purchase", 9.0, ["tableware"])]))
    e.advance_to(T0 + 10 * DAY)
    [u] = e.uplift(T0, T0 + DAY).to_pylist()
    assert u["treatment_entries"] + u["holdout_entries"] + u["immature_entries"] == 0


def test_caps_are_the_same_on_a_replay_and_after_a_checkpoint(tmp_path: Path) -> None:
    rows: list[Row] = []
    for i, cat in enumerate(["kitchen", "garden", "toys", "kitchen", "garden", "toys"] * 3):
        for c in ("x", "y"):
            rows.append((c, T0 + i * 30 * HOUR + (c == "y") * HOUR, "purchase", 3.0, [cat]))
    first = segstream.Engine(CAPPED)
    a = [first.ingest(table([r])).changes for r in rows]
    second = segstream.Engine(CAPPED)
    half = len(rows) // 2
    b = [second.ingest(table([r])).changes for r in rows[:half]]
    second.save(tmp_path / "c.arrow")
    second = segstream.Engine.load(tmp_path / "c.arrow")
    b += [second.ingest(table([r])).changes for r in rows[half:]]
    got_a = pa.concat_tables(a).to_pylist()
    got_b = pa.concat_tables(b).to_pylist()
    assert got_a == got_b
    assert any(r["capped"] for r in got_a) and not all(r["capped"] for r in got_a)
    # In any 7 days, at most two uncapped entries per customer across the capped segments.
    for c in ("x", "y"):
        sent = [
            r["at"].timestamp() * 1000
            for r in got_a
            if r["customer_id"] == c
            and r["change"] == "enter"
            and r["segment"] != "uncapped"
            and not r["capped"]
        ]
        for t in sent:
            assert sum(1 for s in sent if t <= s < t + 7 * DAY) <= 2


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        ("{name: o, segments: [kitchn], max: 1, per: 1 day}", "unknown segment `kitchn`"),
        ("{name: o, segments: [kitchen], max: 0, per: 1 day}", "at least 1"),
        ("{name: o, segments: [kitchen], max: 1, per: 0 days}", "positive"),
        ("{name: o, segments: [kitchen, kitchen], max: 1, per: 1 day}", "listed twice"),
        ("{name: o, segments: [tier], max: 1, per: 1 day}", "is a lifecycle"),
        ("{name: o, segments: [kitchen], max: 1, per: 1 day, extra: 1}", "unknown field"),
    ],
)
def test_bad_caps_are_rule_errors(cap: str, message: str) -> None:
    rules = f"""
segments:
  - {{name: kitchen, rule: orders >= 1}}
lifecycles:
  - {{name: tier, stages: [{{name: gold, rule: ltv >= 1}}]}}
frequency_caps:
  - {cap}
"""
    with pytest.raises(segstream.RuleError, match=message):
        segstream.Engine(rules)
