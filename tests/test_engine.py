"""Focused tests of the `segstream.Engine` API: what a user notices first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest
import segstream

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
RULES = {
    "segments": [
        {"name": "buyers", "rule": "orders >= 1"},
        {"name": "big", "rule": "ltv >= 100"},
        {
            "name": "kitchen_recent",
            "rule": "purchases(category => 'kitchen', within => INTERVAL '30 days') >= 1",
        },
    ],
    "lifecycles": [
        {
            "name": "tier",
            "stages": [
                {"name": "gold", "rule": "ltv >= 1000"},
                {"name": "regular", "rule": "orders >= 1"},
            ],
        }
    ],
}


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def events(**columns: list[Any]) -> pa.Table:
    return pa.table(columns)


def moves(changes: pa.Table) -> list[tuple[Any, ...]]:
    cols = ["customer_id", "segment", "change", "from_stage", "to_stage", "at", "cause"]
    return sorted(tuple(r[c] for c in cols) for r in changes.to_pylist())


# -- rows and schemas ----------------------------------------------------------------------


def test_bad_rows_are_rejected_with_reasons_and_the_rest_applies() -> None:
    engine = segstream.Engine(RULES)
    result = engine.ingest(
        events(
            customer_id=["ok1", None, "nan", "neg", "badts", "ok2"],
            ts=[
                "2024-01-01",
                "2024-01-01",
                "2024-01-01",
                "2024-01-01",
                "not a date",
                "2024-01-02T10:00:00Z",
            ],
            amount=[10.0, 10.0, float("nan"), -3.0, 10.0, 200.0],
        )
    )
    reasons = {r["row"]: r["reason"] for r in result.rejected.to_pylist()}
    assert sorted(reasons) == [1, 2, 3, 4]
    assert "customer_id" in reasons[1] and "null" in reasons[1]
    assert "NaN" in reasons[2]
    assert "negative" in reasons[3]
    assert "not a date" in reasons[4] and "ts" in reasons[4]
    assert result.applied == 2
    assert sorted(engine.members("buyers").to_pylist()) == ["ok1", "ok2"]
    assert engine.members("big").to_pylist() == ["ok2"]
    assert engine.snapshot().num_rows == 2
    assert engine.clock == datetime(2024, 1, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize("missing", ["customer_id", "ts"])
def test_missing_column_is_a_schema_error_that_changes_nothing(missing: str) -> None:
    engine = segstream.Engine(RULES)
    engine.ingest(events(customer_id=["a"], ts=[day(0)], amount=[150.0]))
    before, clock = engine.snapshot(), engine.clock
    batch = {"customer_id": ["a", "b"], "ts": [day(5), day(6)], "amount": [900.0, 5.0]}
    del batch[missing]
    with pytest.raises(segstream.SchemaError) as err:
        engine.ingest(pa.table(batch))
    assert err.value.column == missing
    assert f"`{missing}`" in str(err.value)
    assert engine.snapshot().equals(before)
    assert engine.clock == clock


def test_wrong_id_type_is_a_schema_error() -> None:
    engine = segstream.Engine(RULES)
    with pytest.raises(segstream.SchemaError) as err:
        engine.ingest(events(customer_id=[True], ts=[day(0)], amount=[1.0]))
    assert err.value.column == "customer_id"
    assert engine.num_customers == 0


def test_int64_ids_stay_integers() -> None:
    engine = segstream.Engine(RULES)
    result = engine.ingest(
        events(
            customer_id=pa.array([42, 7, 42], pa.int64()), ts=[day(0)] * 3, amount=[60.0, 5.0, 60.0]
        )
    )
    assert result.changes.schema.field("customer_id").type == pa.int64()
    assert engine.snapshot().schema.field("customer_id").type == pa.int64()
    assert engine.members("big").to_pylist() == [42]
    assert engine.profile(42)["orders"] == 2
    with pytest.raises(KeyError):
        engine.profile(43)
    # One engine holds one kind of id: a text id is read as the integer it spells exactly
    # (the rule the JSON decoder follows too), anything else is a rejected row.
    out = engine.ingest(events(customer_id=["42", "x"], ts=[day(1)] * 2, amount=[1.0] * 2))
    assert out.applied == 1 and out.rejected.column("row").to_pylist() == [1]
    assert engine.profile(42)["orders"] == 3


def test_string_ids() -> None:
    engine = segstream.Engine(RULES)
    result = engine.ingest(
        events(
            customer_id=pa.array(["c1", "c2"], pa.large_string()),
            ts=[day(0)] * 2,
            amount=[150.0, 5.0],
        )
    )
    assert result.changes.schema.field("customer_id").type == pa.string()
    assert engine.members("big").to_pylist() == ["c1"]
    assert engine.profile("c2")["ltv"] == 5.0


def test_polars_dataframe_input() -> None:
    engine = segstream.Engine(RULES)
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "ts": [day(0), day(1), day(1)],
            "amount": [60.0, 50.0, 20.0],
            "categories": [["kitchen"], [], ["garden"]],
        }
    )
    result = engine.ingest(frame)
    assert result.applied == 3 and result.rejected.num_rows == 0
    assert engine.members("big").to_pylist() == ["a"]
    assert engine.members("kitchen_recent").to_pylist() == ["a"]
    assert engine.clock == day(1)


def test_duckdb_relation_input() -> None:
    engine = segstream.Engine(RULES)
    relation = duckdb.sql(
        """
        SELECT * FROM (VALUES
            ('a', TIMESTAMPTZ '2024-01-01 00:00:00+00', 60.00::DECIMAL(12, 2), ['kitchen']),
            ('a', TIMESTAMPTZ '2024-01-02 00:00:00+00', 40.00::DECIMAL(12, 2), []),
            ('b', TIMESTAMPTZ '2024-01-02 00:00:00+00', 99.99::DECIMAL(12, 2), [])
        ) AS t(customer_id, ts, amount, categories)
        """
    )
    result = engine.ingest(relation)
    assert result.applied == 3 and result.rejected.num_rows == 0
    assert engine.members("big").to_pylist() == ["a"]  # 100.00 is in, 99.99 is not
    assert engine.profile("b")["ltv"] == 99.99
    assert engine.clock == day(1)


def test_decimal128_amounts_are_exact() -> None:
    engine = segstream.Engine(
        {
            "segments": [
                {"name": "exact", "rule": "ltv = 0.3"},
                {"name": "gold", "rule": "ltv >= 10000"},
            ]
        }
    )
    amounts = [
        Decimal("0.10"),
        Decimal("0.20"),
        Decimal("9999.99"),
        Decimal("0.01"),
        Decimal("9999.99"),
    ]
    engine.ingest(
        events(
            customer_id=["a", "a", "b", "b", "c"],
            ts=[day(0)] * 5,
            amount=pa.array(amounts, pa.decimal128(38, 2)),
        )
    )
    assert engine.members("exact").to_pylist() == ["a"]
    assert engine.members("gold").to_pylist() == ["b"]
    ltv = {r["customer_id"]: r["ltv"] for r in engine.snapshot().to_pylist()}
    assert ltv == {"a": Decimal("0.30"), "b": Decimal("10000.00"), "c": Decimal("9999.99")}


def test_event_id_makes_ingest_idempotent() -> None:
    engine = segstream.Engine(RULES)
    first = events(
        customer_id=["a", "a"], ts=[day(0), day(1)], amount=[60.0, 50.0], event_id=["e1", "e2"]
    )
    assert engine.ingest(first).applied == 2
    again = engine.ingest(first)
    assert (again.applied, again.duplicates, again.changes.num_rows) == (0, 2, 0)
    within = engine.ingest(
        events(customer_id=["a", "a"], ts=[day(2)] * 2, amount=[1.0, 1.0], event_id=["e3", "e3"])
    )
    assert (within.applied, within.duplicates) == (1, 1)
    assert engine.profile("a")["orders"] == 3
    assert engine.profile("a")["ltv"] == 111.0


# -- rule errors ---------------------------------------------------------------------------


def test_unknown_field_suggests_the_right_one() -> None:
    with pytest.raises(segstream.RuleError) as err:
        segstream.Engine({"segments": [{"name": "vip", "rule": "orders >= 1 AND\n  lvt >= 1"}]})
    assert (err.value.line, err.value.column, err.value.segment) == (2, 3, "vip")
    assert "did you mean `ltv`" in str(err.value)
    assert "lvt >= 1" in str(err.value)  # the source line, with a caret under it
    with pytest.raises(segstream.RuleError) as err:
        segstream.Engine({"segments": [{"name": "vip", "rule": "lvt >= 1"}]})
    assert (err.value.line, err.value.column) == (1, 1)


def test_undeclared_trait_shows_the_yaml_to_add() -> None:
    with pytest.raises(segstream.RuleError) as err:
        segstream.Engine({"segments": [{"name": "b2b", "rule": "industry = 'retail'"}]})
    assert "traits: {industry: string}" in str(err.value)
    # Declared as the message says, the same rule compiles.
    segstream.Engine(
        {
            "traits": {"industry": "string"},
            "segments": [{"name": "b2b", "rule": "industry = 'retail'"}],
        }
    )


def test_type_error_names_both_types() -> None:
    with pytest.raises(segstream.RuleError) as err:
        segstream.Engine({"segments": [{"name": "s", "rule": "ltv >= 'lots'"}]})
    assert "money" in str(err.value) and "string" in str(err.value)
    assert err.value.segment == "s"
    with pytest.raises(segstream.RuleError) as err:
        segstream.Engine({"segments": [{"name": "s", "rule": "orders > now()"}]})
    assert "integer" in str(err.value) and "timestamp" in str(err.value)


def test_cycle_error_names_the_cycle() -> None:
    spec = {
        "segments": [
            {"name": "a", "rule": "in_segment('b')"},
            {"name": "b", "rule": "in_segment('c') AND orders > 1"},
            {"name": "c", "rule": "NOT in_segment('a')"},
        ]
    }
    with pytest.raises(segstream.RuleError) as err:
        segstream.Engine(spec)
    message = str(err.value)
    assert "cycle" in message
    assert any(c in message for c in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"))


# -- replacing rules -----------------------------------------------------------------------


def test_replace_rules_emits_changes_with_cause_rules() -> None:
    engine = segstream.Engine(RULES)
    engine.ingest(
        events(
            customer_id=["a", "b"],
            ts=[day(0), day(1)],
            amount=[60.0, 500.0],
            categories=[["kitchen"], []],
        )
    )
    new = {
        "segments": [
            {"name": "buyers", "rule": "orders >= 1"},
            {"name": "big", "rule": "ltv >= 50"},
            {
                "name": "kitchen_recent",
                "rule": "purchases(category => 'kitchen', within => INTERVAL '30 days') >= 1",
            },
        ]
    }
    changes = engine.replace_rules(new)
    assert set(changes.column("cause").to_pylist()) == {"rules"}
    assert set(changes.column("at").to_pylist()) == {day(1)}
    got = {(r["customer_id"], r["segment"], r["change"]) for r in changes.to_pylist()}
    assert ("a", "big", "enter") in got
    assert ("a", "tier", "exit") in got and ("b", "tier", "exit") in got
    assert sorted(engine.members("big").to_pylist()) == ["a", "b"]
    assert engine.rules.segment_names == ["buyers", "big", "kitchen_recent"]


@pytest.mark.parametrize(
    "rule",
    [
        "purchases(category => 'kitchen', within => INTERVAL '90 days') >= 1",
        "events('page_view', within => INTERVAL '7 days') >= 3",
        "has_category('garden')",
    ],
)
def test_replace_rules_refuses_rules_that_need_history_not_kept(rule: str) -> None:
    engine = segstream.Engine(RULES)
    engine.ingest(events(customer_id=["a"], ts=[day(0)], amount=[60.0]))
    before = engine.snapshot()
    new = {"segments": [*RULES["segments"], {"name": "new", "rule": rule}]}
    with pytest.raises(segstream.MissingHistoryError) as err:
        engine.replace_rules(new)
    assert "re-ingest" in str(err.value)
    assert engine.snapshot().equals(before)
    assert engine.rules.segment_names == ["buyers", "big", "kitchen_recent"]


# -- checkpoints and replays ---------------------------------------------------------------


def test_checkpoint_with_other_rules_is_refused(tmp_path: Path) -> None:
    engine = segstream.Engine(RULES)
    engine.ingest(events(customer_id=["a"], ts=[day(0)], amount=[60.0]))
    path = tmp_path / "state.arrow"
    engine.save(path, offsets={"events/0": 1})
    other = {"segments": [{"name": "buyers", "rule": "orders >= 2"}]}
    with pytest.raises(segstream.CheckpointError) as err:
        segstream.Engine.load(path, rules=other)
    assert "other rules" in str(err.value)
    loaded = segstream.Engine.load(path, rules=RULES)
    assert loaded.source_offsets == {"events/0": 1}
    assert loaded.snapshot().equals(engine.snapshot())


def test_empty_engine_checkpoint_round_trip(tmp_path: Path) -> None:
    # A service may checkpoint before its first event.
    engine = segstream.Engine({"segments": [{"name": "s", "rule": "orders >= 1"}]})
    engine.save(tmp_path / "empty.arrow")
    assert segstream.Engine.load(tmp_path / "empty.arrow").num_customers == 0


def test_empty_engine_checkpoint_round_trip_with_month_rules(tmp_path: Path) -> None:
    engine = segstream.Engine({"segments": [{"name": "m", "rule": "purchased_in_month(3)"}]})
    engine.save(tmp_path / "empty.arrow")
    loaded = segstream.Engine.load(tmp_path / "empty.arrow")
    assert loaded.num_customers == 0


def test_change_ids_are_the_same_on_a_replay() -> None:
    batches = [
        events(
            customer_id=["a", "b"],
            ts=[day(0), day(0)],
            amount=[60.0, 2000.0],
            categories=[["kitchen"], []],
        ),
        events(customer_id=["a", "c"], ts=[day(3), day(4)], amount=[50.0, 1.0]),
        events(customer_id=["b"], ts=[day(5)], event_type=["refund"], amount=[1500.0]),
    ]

    def run() -> list[dict[str, Any]]:
        engine = segstream.Engine(RULES)
        out = [r for b in batches for r in engine.ingest(b).changes.to_pylist()]
        return out + engine.advance_to(day(60)).to_pylist()

    first, second = run(), run()
    assert len(first) >= 8
    assert first == second
    ids = [r["change_id"] for r in first]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert ("a", "kitchen_recent", "exit", None, None, day(30) + MS, "time") in moves(
        pa.Table.from_pylist(first)
    )


# -- bugs found by the property tests ------------------------------------------------------


def test_customer_known_only_from_an_unused_signal() -> None:
    # docs/rules.md: a member is a customer for whom the rule is TRUE. Whether `newcomers`
    # holds for `v` cannot depend on an unrelated segment.
    view = events(customer_id=["v"], ts=[day(0)], event_type=["page_view"])
    alone = segstream.Engine({"segments": [{"name": "newcomers", "rule": "orders = 0"}]})
    alone.ingest(view)
    with_other = segstream.Engine(
        {
            "segments": [
                {"name": "newcomers", "rule": "orders = 0"},
                {"name": "browsers", "rule": "events('page_view') >= 5"},
            ]
        }
    )
    with_other.ingest(view)
    assert with_other.members("newcomers").to_pylist() == ["v"]
    assert alone.members("newcomers").to_pylist() == ["v"]


# -- merging shards ------------------------------------------------------------------------


def test_merge_refuses_shared_customers_other_rules_and_itself_changing_nothing() -> None:
    batch = events(customer_id=["a", "b"], ts=[day(1), day(2)], amount=[50.0, 200.0])
    a, b = segstream.Engine(RULES), segstream.Engine(RULES)
    a.ingest(batch)
    b.ingest(batch.slice(1))
    with pytest.raises(segstream.SegstreamError, match="customer `b` is in both engines"):
        a.merge(b)
    assert a.snapshot().num_rows == 2 and b.snapshot().num_rows == 1  # nothing moved

    other = segstream.Engine({"segments": [{"name": "x", "rule": "orders >= 2"}]})
    other.ingest(events(customer_id=["z"], ts=[day(1)], amount=[1.0]))
    with pytest.raises(segstream.SegstreamError, match="different rules"):
        a.merge(other)
    ints = segstream.Engine(RULES)
    ints.ingest(events(customer_id=[7], ts=[day(1)], amount=[1.0]))
    with pytest.raises(segstream.SegstreamError, match="integer ids"):
        a.merge(ints)
    with pytest.raises(ValueError, match="itself"):
        a.merge(a)
    assert a.stats() == {
        "buyers": 2,
        "big": 1,
        "kitchen_recent": 0,
        "tier": {"gold": 0, "regular": 2},
    }


def test_shard_needs_deferred_evaluation_and_a_valid_index() -> None:
    batch = events(customer_id=["a"], ts=[day(1)], amount=[5.0])
    engine = segstream.Engine(RULES)
    with pytest.raises(ValueError, match="evaluate=False"):
        engine.ingest(batch, shard=(0, 2))
    with pytest.raises(ValueError, match="below the count"):
        engine.ingest(batch, evaluate=False, shard=(2, 2))
    assert engine.snapshot().num_rows == 0
    # Every customer is in exactly one of the shards; a null id is shard 0's to reject.
    ids = [f"c{i}" for i in range(200)]
    many = events(customer_id=[*ids, None], ts=[day(1)] * 201, amount=[5.0] * 201)
    shards = [segstream.Engine(RULES) for _ in range(3)]
    results = [s.ingest(many, evaluate=False, shard=(k, 3)) for k, s in enumerate(shards)]
    held = [set(s.snapshot()["customer_id"].to_pylist()) for s in shards]
    assert sorted(c for h in held for c in h) == sorted(ids)
    assert all(len(h) > 30 for h in held)
    assert [r.rejected.num_rows for r in results] == [1, 0, 0]
