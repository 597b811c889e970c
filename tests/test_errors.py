"""One exception tree: each kind of mistake raises its class, which is also the
built-in exception a Python user catches for it, whichever side found it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import segstream
from segstream.file_inputs import check_column_map

RULES = {"segments": [{"name": "vip", "rule": "ltv >= 100"}]}


def engine_with_one_customer() -> segstream.Engine:
    e = segstream.Engine(RULES)
    e.ingest(pa.table({"customer_id": ["c1"], "ts": [1_700_000_000_000], "amount": [150.0]}))
    return e


def test_unknown_segment_is_a_key_error_with_a_readable_message() -> None:
    e = engine_with_one_customer()
    with pytest.raises(segstream.NotFoundError) as err:
        e.members("vpi")
    assert isinstance(err.value, KeyError) and isinstance(err.value, segstream.SegstreamError)
    assert str(err.value).startswith("unknown segment `vpi`")
    assert "did you mean `vip`" in str(err.value)


def test_unknown_customer_is_a_key_error() -> None:
    e = engine_with_one_customer()
    with pytest.raises(segstream.NotFoundError, match="unknown customer `nobody`"):
        e.profile("nobody")
    with pytest.raises(KeyError):
        e.profile("nobody")


def test_a_column_map_mistake_raises_the_same_class_from_python_and_from_the_engine() -> None:
    reversed_pair = {"cust_no": "customer_id"}
    with pytest.raises(segstream.InvalidInputError) as py_side:
        check_column_map(reversed_pair)
    with pytest.raises(segstream.InvalidInputError) as engine_side:
        segstream.Engine(RULES, column_map=reversed_pair)
    for err in (py_side.value, engine_side.value):
        assert isinstance(err, ValueError)
        assert "cust_no" in str(err)


def test_merging_engines_of_different_rules_is_invalid_input() -> None:
    a = engine_with_one_customer()
    b = segstream.Engine({"segments": [{"name": "vip", "rule": "ltv >= 200"}]})
    with pytest.raises(segstream.InvalidInputError, match="different rules"):
        a.merge(b)


def test_loading_a_missing_checkpoint_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(segstream.MissingFileError) as err:
        segstream.Engine.load(tmp_path / "nope.arrow")
    assert isinstance(err.value, FileNotFoundError)
    assert "nope.arrow" in str(err.value)
