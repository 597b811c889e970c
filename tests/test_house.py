"""The binding's contract as a user meets it: any Arrow PyCapsule producer goes in,
named results come out, a panic is an InternalError, and the engine says what a
deferred load can do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import segstream
from segstream import _segstream
from segstream.types import ArrowArrayExportable, ArrowStreamExportable, IngestOutcome

RULES = {"segments": [{"name": "vip", "rule": "ltv >= 100"}]}
EVENTS = {
    "customer_id": ["a", "b"],
    "ts": [1_700_000_000_000, 1_700_000_000_001],
    "amount": [150.0, 5.0],
}


def raw_engine(rules: dict[str, object] = RULES) -> _segstream.Engine:
    return _segstream.Engine(json.dumps(rules))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: pa.table(EVENTS), id="pyarrow-table"),
        pytest.param(lambda: pa.RecordBatch.from_pydict(EVENTS), id="pyarrow-batch"),
        pytest.param(lambda: pl.DataFrame(EVENTS), id="polars"),
    ],
)
def test_any_arrow_producer_is_ingested_and_the_outcome_is_named(make) -> None:  # type: ignore[no-untyped-def]
    data = make()
    assert isinstance(data, ArrowStreamExportable | ArrowArrayExportable)
    out = raw_engine().ingest(data)
    assert isinstance(out, IngestOutcome)
    assert (out.applied, out.duplicates, out.rejected.num_rows) == (2, 0, 0)
    assert out.changes.column("customer_id").to_pylist() == ["a"]
    # Still a tuple, so code that unpacks the four results keeps working.
    changes, rejected, applied, duplicates, *_ = out
    assert applied == 2 and changes.equals(out.changes)


def test_json_and_trait_ingests_return_the_same_named_outcome() -> None:
    e = raw_engine({**RULES, "traits": {"industry": "string"}})
    msg = json.dumps({"customer_id": "a", "ts": 1_700_000_000_000, "amount": 150.0})
    out = e.ingest_json([msg, b"{not json"])
    assert isinstance(out, IngestOutcome)
    assert out.applied == 1 and out.rejected.column("row").to_pylist() == [1]
    traits = e.update_traits(pa.table({"customer_id": ["a"], "industry": ["retail"]}))
    assert isinstance(traits, IngestOutcome) and traits.applied == 1


def test_a_panic_in_the_engine_is_an_internal_error_that_asks_for_a_report() -> None:
    with pytest.raises(segstream.InternalError) as err:
        _segstream._panic_for_tests("boom at row 7")
    message = str(err.value)
    assert isinstance(err.value, RuntimeError) and isinstance(err.value, segstream.SegstreamError)
    assert "boom at row 7" in message and "please report it" in message
    # The interpreter and the extension are still usable afterwards.
    assert raw_engine().ingest(pa.table(EVENTS)).applied == 2


def test_the_engine_says_whether_a_deferred_load_is_exact() -> None:
    assert raw_engine().defers_exactly
    with_cooldown = {"segments": [{"name": "vip", "rule": "ltv >= 100", "cooldown": "30 days"}]}
    assert not raw_engine(with_cooldown).defers_exactly
    lifecycle_only = {
        "lifecycles": [{"name": "tier", "stages": [{"name": "gold", "rule": "ltv >= 100"}]}]
    }
    assert raw_engine(lifecycle_only).defers_exactly


def test_rule_columns_are_in_the_engines_event_column_order() -> None:
    columns = raw_engine().rule_columns
    order = [c for c in _segstream.EVENT_COLUMNS if c in columns]
    assert columns == order
    assert {"event_id", "order_id", "product_ids"}.isdisjoint(columns)
    tagged = raw_engine({"segments": [{"name": "k", "rule": "has_category('kitchen')"}]})
    assert "categories" in tagged.rule_columns


def test_the_stub_matches_the_built_extension() -> None:
    pytest.importorskip("mypy")
    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", "pyproject.toml"]
    run = subprocess.run([*argv, "segstream._segstream"], capture_output=True, text=True, cwd=root)
    assert run.returncode == 0, run.stdout + run.stderr


def test_ids_of_the_other_kind_convert_by_one_rule_in_arrow_json_and_traits() -> None:
    """A text-id engine reads integer ids as their decimal text, from an Arrow batch as
    from JSON; an integer-id engine reads a text id only when it is an integer written
    exactly, and rejects the row naming the id otherwise."""
    rules = {**RULES, "traits": {"industry": "string"}}
    text_ids = segstream.Engine(rules)
    text_ids.ingest(pa.table({"customer_id": ["42"], "ts": [1_700_000_000_000], "amount": [1.0]}))
    arrow = text_ids.ingest(
        pa.table({"customer_id": [42], "ts": [1_700_000_000_001], "amount": [99.0]})
    )
    assert arrow.rejected.num_rows == 0
    assert arrow.changes.column("customer_id").to_pylist() == ["42"]
    json_out = text_ids.ingest_json(
        [json.dumps({"customer_id": 42, "ts": 1_700_000_000_002, "amount": 1.0})]
    )
    assert json_out.applied == 1
    text_ids.update_traits(pa.table({"customer_id": [42], "industry": ["retail"]}))
    profile = text_ids.profile("42")
    assert profile["orders"] == 3 and profile["traits"] == {"industry": "retail"}
    assert text_ids.num_customers == 1

    int_ids = segstream.Engine(rules)
    int_ids.ingest(pa.table({"customer_id": [7], "ts": [1_700_000_000_000], "amount": [1.0]}))
    texts = pa.table(
        {"customer_id": ["7", "007", "x"], "ts": [1_700_000_000_001] * 3, "amount": [1.0] * 3}
    )
    out = int_ids.ingest(texts)
    assert out.applied == 1
    assert out.rejected.to_pylist() == [
        {
            "row": 1,
            "reason": "customer_id `007` is not an integer, and this engine holds integer ids",
        },
        {
            "row": 2,
            "reason": "customer_id `x` is not an integer, and this engine holds integer ids",
        },
    ]
    flat = [
        json.dumps({"customer_id": t, "ts": 1_700_000_000_002, "amount": 1.0}) for t in ("7", "007")
    ]
    assert int_ids.ingest_json(flat).applied == 1
    assert int_ids.profile(7)["orders"] == 3 and int_ids.num_customers == 1
    assert int_ids.profile("7") == int_ids.profile(7)


def test_each_customer_remembers_its_last_1024_event_ids_across_a_checkpoint(
    tmp_path: Path,
) -> None:
    n = 1024 + 10

    def batch(ids: list[int]) -> pa.Table:
        return pa.table(
            {
                "customer_id": ["a"] * len(ids),
                "ts": [1_700_000_000_000 + i for i in ids],
                "amount": [1.0] * len(ids),
                "event_id": [f"e{i}" for i in ids],
            }
        )

    engine = segstream.Engine(RULES)
    assert engine.ingest(batch(list(range(n)))).applied == n
    engine.save(tmp_path / "state.arrow")
    for e in (engine, segstream.Engine.load(tmp_path / "state.arrow")):
        recent = e.ingest(batch([n - 1, n - 1024]))
        assert (recent.applied, recent.duplicates) == (0, 2)
        # Older than the last 1,024: forgotten, so applied again (the documented bound).
        assert e.ingest(batch([0])).applied == 1
        assert e.profile("a")["orders"] == n + 1
