"""Profile merges (docs/measure.md § Profile merges): the changes of a merge, equivalence
with having ingested both customers' events under one id from the start, chains, cycles
and repeats, bad rows, checkpoints and JSON `alias` messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import segstream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_measure_uplift import DAY, HOUR, T0, Row, table

RULES = """
segments:
  - name: buyers
    rule: orders >= 1
  - name: big
    rule: ltv >= 100
  - name: kitchen_recent
    rule: purchases(category => 'kitchen', within => INTERVAL '5 days') >= 2
  - name: lapsed
    rule: last_purchase_at <= now() - INTERVAL '10 days'
lifecycles:
  - name: tier
    stages:
      - {name: gold, rule: ltv >= 150}
      - {name: silver, rule: ltv >= 50}
"""


def pairs(*rows: tuple[str, str]) -> pa.Table:
    return pa.table({"customer_id": [r[0] for r in rows], "into": [r[1] for r in rows]})


def kinds(changes: pa.Table) -> list[tuple[str, str, str, str]]:
    return sorted(
        (r["customer_id"], r["segment"], r["change"], r["cause"]) for r in changes.to_pylist()
    )


def test_merging_two_members_of_a_segment_reports_each_change_once() -> None:
    e = segstream.Engine(RULES)
    e.ingest(table([("anon", T0, "purchase", 90.0, []), ("user", T0, "purchase", 70.0, [])]))
    changes = e.merge_customers(pairs(("anon", "user")))
    assert kinds(changes) == [
        ("anon", "buyers", "exit", "merge"),
        ("anon", "tier", "exit", "merge"),
        ("user", "big", "enter", "merge"),
        ("user", "tier", "progress", "merge"),
    ]
    profile = e.profile("user")
    assert profile["ltv"] == pytest.approx(160.0)
    assert profile["orders"] == 2
    assert e.members("buyers").to_pylist() == ["user"]
    # Later events of the absorbed id are the survivor's.
    e.ingest(table([("anon", T0 + HOUR, "purchase", 30.0, [])]))
    assert e.profile("user")["orders"] == 3
    assert e.profile("anon")["orders"] == 0


def test_bad_rows_are_errors_and_change_nothing() -> None:
    e = segstream.Engine(RULES)
    e.ingest(table([(c, T0, "purchase", 10.0, []) for c in ("a", "b", "c")]))
    e.merge_customers(pairs(("a", "b")))
    before = e.snapshot()
    cases = {
        "into itself": pairs(("b", "b")),
        "unknown customer `nobody`": pairs(("c", "nobody")),
        "already merged into `b`": pairs(("a", "c")),
        # A good first row does not survive a bad second one.
        "row 1: customer `c` cannot be merged": pairs(("c", "b"), ("c", "c")),
    }
    for message, rows in cases.items():
        with pytest.raises(segstream.InvalidInputError, match=message):
            e.merge_customers(rows)
        assert e.snapshot() == before
    with pytest.raises(segstream.InvalidInputError, match="`into` is missing"):
        e.merge_customers(pa.table({"customer_id": ["a"]}))


def test_chains_cycles_and_repeats_follow_the_documented_rule() -> None:
    e = segstream.Engine(RULES)
    e.ingest(table([(c, T0, "purchase", 20.0, []) for c in ("a", "b", "c", "d")]))
    # A chain in one table: everything ends in c.
    e.merge_customers(pairs(("a", "b"), ("b", "c")))
    assert e.profile("c")["orders"] == 3
    # Into an absorbed id means into its survivor; the cycle back and repeats are no-ops.
    e.merge_customers(pairs(("d", "a")))
    assert e.profile("c")["orders"] == 4
    assert e.merge_customers(pairs(("c", "a"), ("b", "c"), ("d", "c"))).num_rows == 0
    assert e.profile("c")["orders"] == 4
    e.ingest(table([(c, T0 + HOUR, "purchase", 1.0, []) for c in ("a", "b", "d")]))
    assert e.profile("c")["orders"] == 7
    # An id never seen becomes an alias: its first events land on the survivor.
    e.merge_customers(pairs(("fresh", "c")))
    e.ingest(table([("fresh", T0 + 2 * HOUR, "purchase", 1.0, [])]))
    assert e.profile("c")["orders"] == 8


def test_checkpoints_keep_the_aliases(tmp_path: Path) -> None:
    e = segstream.Engine(RULES)
    e.ingest(table([(c, T0, "purchase", 20.0, []) for c in ("a", "b", "x")]))
    e.merge_customers(pairs(("a", "b")))
    e.save(tmp_path / "c.arrow")
    loaded = segstream.Engine.load(tmp_path / "c.arrow")
    loaded.ingest(table([("a", T0 + HOUR, "purchase", 5.0, [])]))
    assert loaded.profile("b")["orders"] == 3
    with pytest.raises(segstream.InvalidInputError, match="already merged"):
        loaded.merge_customers(pairs(("a", "x")))


def test_json_alias_messages_merge_profiles() -> None:
    e = segstream.Engine(RULES)
    msgs = [
        json.dumps({"customer_id": "anon-1", "ts": T0, "event_type": "purchase", "amount": 60}),
        json.dumps({"customer_id": "u1", "ts": T0, "event_type": "purchase", "amount": 70}),
        json.dumps({"type": "alias", "previousId": "anon-1", "userId": "u1"}),
        json.dumps({"type": "alias", "previousId": "anon-1"}),
        json.dumps({"type": "alias", "previousId": "u1", "userId": "u1"}),
    ]
    result = e.ingest_json(msgs)
    assert e.profile("u1")["orders"] == 2
    assert ("u1", "big", "enter", "merge") in kinds(result.changes)
    rejected = result.rejected.to_pylist()
    assert [r["row"] for r in rejected] == [3, 4]
    assert "userId" in rejected[0]["reason"] and "itself" in rejected[1]["reason"]


# -- merge equals one id from the start -----------------------------------------------------

KINDS = ["purchase", "purchase", "refund", "page_view"]


@st.composite
def two_histories(draw: st.DrawFn) -> tuple[list[Row], list[Row]]:
    def rows(n: int) -> list[Row]:
        out: list[Row] = []
        for _ in range(n):
            kind = draw(st.sampled_from(KINDS))
            out.append(
                (
                    draw(st.sampled_from(["a", "b", "c"])),
                    T0 + draw(st.integers(0, 20 * 24)) * HOUR,
                    kind,
                    draw(st.integers(0, 9000)) / 100 if kind != "page_view" else 0.0,
                    draw(st.lists(st.sampled_from(["kitchen", "garden"]), max_size=2)),
                )
            )
        return sorted(out, key=lambda r: r[1])

    before = rows(draw(st.integers(1, 25)))
    after = [(c, ts + 21 * DAY, k, a, cats) for c, ts, k, a, cats in rows(draw(st.integers(0, 10)))]
    return before, after


def state_of(e: segstream.Engine, c: str) -> dict[str, Any]:
    p = e.profile(c)
    p.pop("customer_id", None)
    return p


@given(two_histories())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_merge_equals_one_id_from_the_start(history: tuple[list[Row], list[Row]]) -> None:
    before, after = history
    merged = segstream.Engine(RULES)
    one = segstream.Engine(RULES)
    rename = lambda rows: [("b" if r[0] == "a" else r[0], *r[1:]) for r in rows]  # noqa: E731
    merged.ingest(table(before))
    one.ingest(table(rename(before)))
    if "a" in [r[0] for r in before] and "b" in [r[0] for r in before]:
        merged.merge_customers(pairs(("a", "b")))
        assert state_of(merged, "b") == state_of(one, "b")
        if "c" in [r[0] for r in before]:
            assert state_of(merged, "c") == state_of(one, "c")
        merged.ingest(table(after))
        one.ingest(table(rename(after)))
        assert state_of(merged, "b") == state_of(one, "b")
        assert sorted(merged.members("big").to_pylist()) == sorted(one.members("big").to_pylist())
