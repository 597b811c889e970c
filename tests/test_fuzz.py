"""Hostile input: the engine raises its own errors or rejects rows, and never crashes.

- rule text (random, and mutations of valid rules) compiles or raises RuleError;
- malformed event batches raise SchemaError or reject rows, and the valid rows still apply;
- random bytes as a checkpoint raise CheckpointError;
- random bytes to `ingest_json` are rejected rows.

A Rust panic surfaces as pyo3's PanicException (a BaseException): any such escape fails.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import reference as ref
import segstream
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from segstream import file_inputs

DAY = ref.DAY_MS
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
RETAIL = Path(__file__).resolve().parents[1] / "examples" / "rules" / "retail.yaml"
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def fast(examples: int) -> settings:
    """`examples` examples (times $SEGSTREAM_EXAMPLES_SCALE, for a longer hunt), no deadline."""
    scale = float(os.environ.get("SEGSTREAM_EXAMPLES_SCALE", "1"))
    return settings(
        max_examples=max(1, int(examples * scale)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


WORKLOAD = pa.Table.from_pylist(
    [
        {
            "customer_id": f"c{i % 4}",
            "ts": T0 + i * DAY // 3,
            "event_type": ["purchase", "refund", "page_view", "purchase"][i % 4],
            "amount": [12.5, 3.0, None, 9999.99][i % 4],
            "categories": [["kitchen"], ["tableware"], [], ["x"]][i % 4],
            "product_ids": [["p0001"], [], [], ["standard_plan"]][i % 4],
            "flags": [["gift"], [], [], ["b2b"]][i % 4],
            "quantity": [1, None, None, 30][i % 4],
        }
        for i in range(12)
    ]
)


def exercise(engine: segstream.Engine) -> None:
    """Drives a compiled engine through ingest, time and inspection: nothing may raise."""
    result = engine.ingest(WORKLOAD)
    assert result.rejected.num_rows == 0, result.rejected.to_pylist()
    engine.advance_to(T0 + 400 * DAY)
    engine.snapshot()
    engine.stats()


def compile_or_rule_error(spec: Any) -> segstream.Engine | None:
    try:
        return segstream.Engine(spec)
    except segstream.RuleError as e:
        assert str(e)
        return None


# -- rule text -----------------------------------------------------------------------------

VALID_RULES = [s["rule"] for s in yaml.safe_load(RETAIL.read_text())["segments"]] + [
    "ltv >= 99.99 AND refunds = 0",
    "spend(category => 'kitchen', within => INTERVAL '30 days') >= 50",
    "coalesce(max_order, 0) BETWEEN 10 AND 20 OR aov IS NULL",
    "last_event_at('page_view') > TIMESTAMP '2024-05-01 10:00:00' - INTERVAL '12 hours'",
    "purchases(between => (TIMESTAMP '2024-11-01', TIMESTAMP '2024-12-01')) >= 1",
    "purchases(since => DATE '2024-01-01', flag => 'gift') * 2 > orders / 3",
    "stage('vip_tier') IN ('gold', 'silver') AND year(now()) - year(first_purchase_at) >= 1",
    "distinct_categories >= 3 OR distinct_products <> 1 OR items > max_quantity",
]
TOKENS = [
    "(",
    ")",
    ",",
    "'",
    "=>",
    "=",
    "<>",
    "!=",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "AND",
    "OR",
    "NOT",
    "IS",
    "NULL",
    "IN",
    "BETWEEN",
    "TRUE",
    "FALSE",
    "CASE",
    "WHEN",
    "ltv",
    "orders",
    "now()",
    "aov",
    "last_purchase_at",
    "stage('vip_tier')",
    "company_size",
    "in_segment('dormant')",
    "in_segment('nope')",
    "has_category(",
    "purchases(",
    "events(",
    "spend(",
    "month(",
    "coalesce(",
    "within =>",
    "since =>",
    "category =>",
    "product =>",
    "INTERVAL '30 days'",
    "INTERVAL '1 month'",
    "INTERVAL '-5 days'",
    "INTERVAL 'x'",
    "INTERVAL '9223372036854775807 weeks'",
    "INTERVAL '0 ms'",
    "TIMESTAMP '2024-02-30'",
    "DATE '9999-12-31'",
    "TIMESTAMP '0001-01-01 00:00:00'",
    "9223372036854775808",
    "-9223372036854775808",
    "1e400",
    "0.0000000000000000001",
    "1/0",
    "0",
    "''",
    "'\\'",
    '"ltv"',
    "`ltv`",
    "--",
    "/*",
    ";",
    "SELECT",
    "$1",
    "?",
    "\n",
    "\u00e9",
    "\x00",
]


@st.composite
def mutated_rules(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(VALID_RULES))
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 12)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "swap"]))
        piece = draw(st.sampled_from(TOKENS) | st.text(max_size=3))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + f" {piece} " + text[i:]
        elif kind == "replace":
            text = text[:i] + piece + text[j:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            words = text.split(" ")
            a, b = draw(st.integers(0, len(words) - 1)), draw(st.integers(0, len(words) - 1))
            words[a], words[b] = words[b], words[a]
            text = " ".join(words)
    return text


def rule_spec(rule: str) -> dict[str, Any]:
    """The retail rule set (so in_segment/stage/traits resolve) plus `rule` as a segment."""
    spec: dict[str, Any] = yaml.safe_load(RETAIL.read_text())
    spec["segments"].append({"name": "fuzzed", "rule": rule})
    return spec


@fast(300)
@given(rule=st.text(max_size=80) | st.text(alphabet="()'ltvorders<>=ANDOR 0123456789.,"))
def test_random_rule_text_compiles_or_raises_rule_error(rule: str) -> None:
    engine = compile_or_rule_error({"segments": [{"name": "s", "rule": rule}]})
    if engine is not None:
        exercise(engine)


@fast(250)
@given(rule=mutated_rules())
def test_mutated_rules_compile_or_raise_rule_error(rule: str) -> None:
    engine = compile_or_rule_error(rule_spec(rule))
    if engine is not None:
        exercise(engine)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(I64_MIN * 2, I64_MAX * 2)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["30 days", "1 hour", "-1 day", "0 ms", "1 month", "ltv >= 1", "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@fast(200)
@given(
    options=st.dictionaries(
        st.sampled_from(
            ["currency_scale", "allowed_lateness", "holdout_salt", "traits", "bogus", "segments"]
        ),
        json_values,
    ),
    segment=st.dictionaries(
        st.sampled_from(["name", "rule", "holdout", "cooldown", "description", "extra"]),
        json_values,
    ),
    lifecycle=st.none() | json_values,
)
def test_random_rule_set_options_compile_or_raise_rule_error(
    options: dict[str, Any], segment: dict[str, Any], lifecycle: Any
) -> None:
    spec: dict[str, Any] = {"segments": [{"name": "s", "rule": "orders >= 1", **segment}]}
    spec.update(options)
    if lifecycle is not None:
        spec["lifecycles"] = lifecycle
    engine = compile_or_rule_error(spec)
    if engine is not None:
        engine.ingest(WORKLOAD)
        engine.advance_to(T0 + 400 * DAY)
        engine.snapshot()


@fast(150)
@given(text=st.text(max_size=200) | st.text(alphabet="segments:- name rule\n{}[]'\"#&*!|>"))
def test_random_yaml_compiles_or_raises_rule_error(text: str) -> None:
    try:
        ruleset = segstream.RuleSet.from_yaml(text)
    except segstream.RuleError:
        return
    compile_or_rule_error(ruleset)


COMPILE_IN_CHILD = """
import sys, segstream
rule = sys.stdin.read()
try:
    segstream.Engine({"segments": [{"name": "s", "rule": rule}]})
    print("compiled")
except segstream.RuleError as e:
    print("RuleError", e)
"""


def compile_in_child(rule: str) -> str:
    """Compiles `rule` in a child process (a stack overflow kills the child, not pytest)."""
    child = subprocess.run(
        [sys.executable, "-c", COMPILE_IN_CHILD],
        input=rule,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    assert child.returncode == 0, f"exit {child.returncode}: {child.stderr[-500:]}"
    return child.stdout


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param("(" * 5000 + "TRUE" + ")" * 5000, id="parentheses"),
        pytest.param("NOT " * 5000 + "TRUE", id="not"),
        pytest.param("coalesce(" * 3000 + "ltv" + ")" * 3000 + " > 0", id="calls"),
        pytest.param(" AND ".join(["orders >= 1"] * 2000), id="and-2000"),
        pytest.param("orders" + " + 1" * 5000 + " > 0", id="plus-5000"),
        pytest.param(
            "orders" + " + 1" * 10000 + " > 0",
            id="plus-10000",
        ),
        pytest.param(
            "TRUE" + " OR TRUE" * 8000,
            id="or-8000",
        ),
    ],
)
def test_deep_nesting_is_a_rule_error_not_a_stack_overflow(rule: str) -> None:
    assert len(rule.encode()) <= 65536 or "longer than" in compile_in_child(rule)
    out = compile_in_child(rule)
    assert out.startswith(("compiled", "RuleError")), out


# -- malformed event batches ---------------------------------------------------------------

RULES = yaml.safe_load(RETAIL.read_text())

# One defect per row, each a reason to reject that row alone (docs/api.md: rejected rows).
P = {"event_type": "purchase", "amount": 10.0}
DEFECTS: dict[str, dict[str, Any]] = {
    "null customer": {"customer_id": None},
    "null ts": {"ts": None},
    "unparseable ts": {"ts": "yesterday-ish"},
    "ts before 1900": {"ts": "1800-01-01T00:00:00Z"},
    "ts after 9999": {"ts": "+10000-01-01T00:00:00Z"},
    "NaN amount": {**P, "amount": math.nan},
    "inf amount": {**P, "amount": math.inf},
    "-inf amount": {**P, "amount": -math.inf},
    "negative amount": {**P, "amount": -5.0},
    "negative refund": {"event_type": "refund", "amount": -5.0},
    "null purchase amount": {**P, "amount": None},
    "huge amount": {**P, "amount": 1e300},
    "negative quantity": {**P, "quantity": -3},
    "empty event_type": {"event_type": ""},
}


@st.composite
def good_rows(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["purchase", "purchase", "refund", "page_view"]))
    ts = T0 + draw(st.integers(0, 60 * DAY))
    return {
        "customer_id": draw(st.sampled_from(["a", "b", "c", "d"])),
        "ts": datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat(),
        "event_type": kind,
        "amount": draw(st.integers(0, 10**6)) / 100 if kind != "page_view" else None,
        "categories": draw(st.lists(st.sampled_from(["kitchen", "tableware"]), max_size=2)),
        "quantity": draw(st.none() | st.integers(0, 30)),
    }


@fast(120)
@given(
    rows=st.lists(
        st.tuples(good_rows(), st.none() | st.sampled_from(sorted(DEFECTS))),
        min_size=1,
        max_size=30,
    )
)
def test_bad_rows_are_rejected_and_the_rest_applies(
    rows: list[tuple[dict[str, Any], str | None]],
) -> None:
    batch = [{**row, **DEFECTS[d]} if d else row for row, d in rows]
    bad = [i for i, (_, d) in enumerate(rows) if d]
    schema = pa.schema(
        [
            ("customer_id", pa.string()),
            ("ts", pa.string()),
            ("event_type", pa.string()),
            ("amount", pa.float64()),
            ("categories", pa.list_(pa.string())),
            ("quantity", pa.int64()),
        ]
    )
    engine, clean = segstream.Engine(RULES), segstream.Engine(RULES)
    result = engine.ingest(pa.Table.from_pylist(batch, schema=schema))
    rejected = result.rejected.to_pylist()
    assert [r["row"] for r in rejected] == bad
    assert all(r["reason"] for r in rejected)
    assert result.applied == len(rows) - len(bad)

    good = [row for row, d in rows if not d]
    expected = clean.ingest(pa.Table.from_pylist(good, schema=schema))
    assert engine.clock_ms == clean.clock_ms
    assert engine.snapshot().to_pylist() == clean.snapshot().to_pylist()

    def moves(t: pa.Table) -> list[tuple[Any, ...]]:
        cols = ["customer_id", "segment", "change", "from_stage", "to_stage", "at", "cause"]
        return sorted(map(tuple, t.select(cols).to_pylist()), key=repr)

    assert moves(result.changes) == moves(expected.changes)


def _values(type_: pa.DataType) -> st.SearchStrategy[Any]:
    if pa.types.is_boolean(type_):
        return st.booleans()
    if pa.types.is_integer(type_):
        info = {8: 2**7, 16: 2**15, 32: 2**31, 64: 2**63}[type_.bit_width]
        if pa.types.is_unsigned_integer(type_):
            return st.integers(0, info * 2 - 1)
        return st.integers(-info, info - 1) | st.sampled_from([0, 1, T0, -1])
    if pa.types.is_floating(type_):
        return st.floats(width=type_.bit_width if type_.bit_width != 16 else 32) | st.sampled_from(
            [math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, T0 * 1.0]
        )
    if pa.types.is_decimal(type_):
        return st.decimals(min_value=-(10**8), max_value=10**8, places=type_.scale, allow_nan=False)
    if pa.types.is_timestamp(type_):
        return st.integers(I64_MIN, I64_MAX) | st.sampled_from([0, T0, -1, I64_MAX, I64_MIN])
    if pa.types.is_date32(type_):
        return st.dates() | st.just(date(1, 1, 1))
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return st.text(max_size=12) | st.sampled_from(
            ["2024-01-01", "2024-13-45", "1714557600000", "purchase", "refund", "", "NaN", "-1"]
        )
    if pa.types.is_binary(type_):
        return st.binary(max_size=8)
    if pa.types.is_list(type_):
        return st.lists(st.none() | _values(type_.value_type), max_size=3)
    if pa.types.is_struct(type_):
        return st.fixed_dictionaries({f.name: st.none() | _values(f.type) for f in type_})
    raise AssertionError(type_)


COLUMN_TYPES = [
    pa.bool_(),
    pa.int8(),
    pa.int32(),
    pa.int64(),
    pa.uint64(),
    pa.float32(),
    pa.float64(),
    pa.decimal128(10, 2),
    pa.decimal128(38, 10),
    pa.string(),
    pa.large_string(),
    pa.binary(),
    pa.timestamp("s"),
    pa.timestamp("ms", tz="UTC"),
    pa.timestamp("us", tz="+05:30"),
    pa.timestamp("ns"),
    pa.date32(),
    pa.list_(pa.string()),
    pa.list_(pa.int64()),
    pa.struct([("x", pa.int64())]),
    pa.null(),
]
EVENT_COLUMNS = [*file_inputs.EVENT_COLUMNS, "unrelated"]


@st.composite
def random_batches(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 8))
    columns = {}
    for name in EVENT_COLUMNS:
        if name not in ("customer_id", "ts") and draw(st.booleans()):
            continue
        type_ = draw(st.sampled_from(COLUMN_TYPES))
        if pa.types.is_null(type_):
            columns[name] = pa.nulls(n)
            continue
        values = draw(st.lists(st.none() | _values(type_), min_size=n, max_size=n))
        try:
            columns[name] = pa.array(values, type=type_)
        except (pa.ArrowInvalid, OverflowError, TypeError, ValueError):
            assume(False)
    as_dictionary = draw(st.sampled_from([None, *columns]))
    if as_dictionary and pa.types.is_string(columns[as_dictionary].type):
        columns[as_dictionary] = columns[as_dictionary].dictionary_encode()
    return pa.table(columns)


@fast(150)
@given(batch=random_batches())
def test_random_column_types_give_schema_errors_or_rejected_rows(
    batch: pa.Table,
) -> None:
    engine = segstream.Engine(RULES)
    try:
        result = engine.ingest(batch)
    except segstream.SchemaError as e:
        assert e.column in batch.column_names or e.column in ("customer_id", "ts"), str(e)
        assert engine.num_customers == 0 and engine.clock_ms is None
        return
    rows = result.rejected.column("row").to_pylist()
    assert rows == sorted(set(rows)) and all(0 <= r < batch.num_rows for r in rows)
    assert result.applied + result.duplicates + len(rows) == batch.num_rows
    engine.snapshot()
    engine.stats()
    engine.advance_to(T0 + 400 * DAY)
    if engine.num_customers:  # an empty one: test_engine.py::test_empty_engine_checkpoint
        with tempfile.TemporaryDirectory() as tmp:
            engine.save(Path(tmp) / "state.arrow")
            segstream.Engine.load(Path(tmp) / "state.arrow").snapshot()


SCALE = {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}


@fast(100)
@given(
    ts=st.integers(I64_MIN, I64_MAX)
    | st.sampled_from([I64_MIN, I64_MAX, 0, -1, -2208988800001, 253402300800000]),
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
    # Far beyond year 9999 advance_to works, but slowly (seconds), so not here.
    advance=st.integers(-(10**13), 10**13) | st.sampled_from([I64_MIN, -1, 0, 253402300799999]),
)
def test_huge_and_tiny_timestamps_are_rejected_or_applied(ts: int, unit: str, advance: int) -> None:
    engine = segstream.Engine(RULES)
    batch = pa.table(
        {
            "customer_id": ["x", "y"],
            "ts": pa.array([ts, T0 * SCALE[unit] // 1000], pa.timestamp(unit)),
            "amount": [5.0, 7.0],
        }
    )
    result = engine.ingest(batch)
    assert result.applied + result.rejected.num_rows == 2
    assert result.rejected.column("row").to_pylist() in ([], [0])
    assert engine.profile("y")["orders"] == 1
    if engine.clock_ms is not None and advance < engine.clock_ms:
        with pytest.raises(segstream.InvalidInputError):
            engine.advance_to(advance)
    else:
        engine.advance_to(advance)
    engine.ingest(WORKLOAD)
    engine.snapshot()
    engine.stats()


# -- checkpoints ---------------------------------------------------------------------------


@fast(150)
@given(
    data=st.binary(max_size=2000)
    | st.binary(max_size=500).map(lambda b: b"ARROW1\x00\x00" + b + b"ARROW1")
)
def test_random_bytes_are_not_a_checkpoint(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.arrow"
        path.write_bytes(data)
        with pytest.raises(segstream.CheckpointError):
            segstream.Engine.load(path)


@pytest.fixture(scope="module")
def checkpoint_bytes() -> bytes:
    engine = segstream.Engine(RULES)
    engine.ingest(WORKLOAD)
    with tempfile.TemporaryDirectory() as tmp:
        engine.save(Path(tmp) / "state.arrow", offsets={"events/0": 12})
        return (Path(tmp) / "state.arrow").read_bytes()


def test_truncated_checkpoints_raise_checkpoint_error(checkpoint_bytes: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.arrow"
        for end in range(0, len(checkpoint_bytes), max(1, len(checkpoint_bytes) // 97)):
            path.write_bytes(checkpoint_bytes[:end])
            with pytest.raises(segstream.CheckpointError):
                segstream.Engine.load(path)


@fast(100)
@given(data=st.data())
def test_corrupted_checkpoints_raise_checkpoint_error_or_load(
    checkpoint_bytes: bytes, data: st.DataObject
) -> None:
    # Arrow IPC carries no checksum: a flipped bit in a value may load. It must never crash.
    corrupt = bytearray(checkpoint_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(corrupt) - 1))
        corrupt[pos] = data.draw(st.integers(0, 255))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.arrow"
        path.write_bytes(bytes(corrupt))
        try:
            engine = segstream.Engine.load(path)
        except segstream.CheckpointError:
            return
    engine.snapshot()
    engine.ingest(WORKLOAD)
    engine.advance_to(T0 + 400 * DAY)


# -- JSON messages -------------------------------------------------------------------------

FLAT_KEYS = [*file_inputs.EVENT_COLUMNS, "type", "traits"]
SEGMENT_KEYS = ["type", "event", "userId", "anonymousId", "timestamp", "messageId", "properties"]


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, default=str, allow_nan=True).encode()


json_messages = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60),
    json_values.map(_json_bytes),
    st.dictionaries(st.sampled_from(FLAT_KEYS), json_values).map(_json_bytes),
    st.dictionaries(st.sampled_from(SEGMENT_KEYS), json_values).map(_json_bytes),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["track", "identify", "page", "traits"]),
            "event": st.sampled_from(["Order Completed", "Order Refunded", "Product Viewed", ""]),
            "userId": json_values,
            "timestamp": json_values,
            "properties": st.fixed_dictionaries(
                {
                    "total": json_values,
                    "products": st.lists(
                        st.dictionaries(
                            st.sampled_from(["product_id", "category", "quantity", "price"]),
                            json_values,
                        ),
                        max_size=2,
                    ),
                }
            ),
        }
    ).map(_json_bytes),
)


@fast(120)
@given(messages=st.lists(json_messages, max_size=6))
def test_random_json_messages_are_rejected_rows(messages: list[bytes | str]) -> None:
    engine = segstream.Engine(RULES)
    result = engine.ingest_json(messages)
    rows = result.rejected.column("row").to_pylist()
    assert rows == sorted(set(rows)) and all(0 <= r < len(messages) for r in rows)
    assert all(result.rejected.column("reason").to_pylist())
    assert result.applied + result.duplicates + len(rows) == len(messages)
    engine.snapshot()
    engine.advance_to(T0 + 400 * DAY)


@fast(100)
@given(data=st.binary(min_size=1, max_size=200))
def test_random_bytes_to_ingest_json_are_rejected(data: bytes) -> None:
    engine = segstream.Engine(RULES)
    assume(not data.lstrip().startswith(b"{"))
    result = engine.ingest_json([data, b'{"customer_id": "ok", "ts": 1714557600000, "amount": 1}'])
    assert result.rejected.column("row").to_pylist() == [0]
    assert result.applied == 1
    assert engine.profile("ok")["orders"] == 1


def test_decimal_amounts_beyond_the_engine_range_are_rejected() -> None:
    engine = segstream.Engine(RULES)
    batch = pa.table(
        {
            "customer_id": ["a", "b", "c"],
            "ts": [T0, T0, T0],
            "amount": pa.array(
                [Decimal("1.00"), Decimal("-1.00"), Decimal("9" * 36 + ".00")],
                pa.decimal128(38, 2),
            ),
        }
    )
    result = engine.ingest(batch)
    assert result.rejected.column("row").to_pylist() == [1, 2]
    assert engine.profile("a")["ltv"] == 1.0
