"""Change messages encoded by the engine: the JSON consumers read, the partition it goes to."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("segstream._segstream")
from aiokafka.partitioner import DefaultPartitioner  # noqa: E402
from segstream import Engine  # noqa: E402
from segstream._segstream import encode_change_messages  # noqa: E402

RULES = """
segments:
  - {name: big_spender, rule: "ltv >= 100", holdout: 50}
lifecycles:
  - name: tier
    stages:
      - {name: gold, rule: "ltv >= 500"}
      - {name: silver, rule: "ltv >= 100"}
"""


def _changes(ids: list[str] | list[int]) -> pa.Table:
    engine = Engine(RULES)
    events = pa.table(
        {
            "customer_id": ids,
            "ts": pa.array(
                [datetime(2024, 5, 1, 10, tzinfo=UTC)] * len(ids), pa.timestamp("ms", "UTC")
            ),
            "event_type": ["purchase"] * len(ids),
            "amount": [150.0] * len(ids),
        }
    )
    return engine.ingest(events).changes


def _expected(row: dict[str, object]) -> dict[str, object]:
    at = row["at"]
    assert isinstance(at, datetime)
    return {**row, "at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


@pytest.mark.parametrize("ids", [["c1", 'c\u00e9"2', "c3"], [7, 8, 9]])
def test_values_are_the_rows_as_json(ids: list[str] | list[int]) -> None:
    table = _changes(ids)
    [(partition, messages)] = encode_change_messages(table, 1)
    assert partition == 0
    assert [json.loads(v) for _, v in messages] == [_expected(r) for r in table.to_pylist()]
    assert [k for k, _ in messages] == [str(r["customer_id"]).encode() for r in table.to_pylist()]


@settings(max_examples=50, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=30, unique=True),
    partitions=st.integers(1, 12),
)
def test_partitions_are_kafkas_default_for_the_key(ids: list[str], partitions: int) -> None:
    table = _changes(ids)
    rows = table.to_pylist()
    choose = DefaultPartitioner()
    everything = list(range(partitions))
    want: dict[int, list[bytes]] = {}
    for r in rows:
        key = str(r["customer_id"]).encode()
        want.setdefault(choose(key, everything, everything), []).append(key)
    got = {p: [k for k, _ in msgs] for p, msgs in encode_change_messages(table, partitions)}
    assert got == want


def test_zero_partitions_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        encode_change_messages(_changes(["a"]), 0)
