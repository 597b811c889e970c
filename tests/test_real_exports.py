"""Quirks of real CRM and shop exports, and rules that could never match: each used to
give a wrong answer silently (exit 0, no warning); now it reads right or fails clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import segstream

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segstream.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("purchase", "refund"),
    [("Purchase", "Refund"), ("PURCHASE", "REFUND"), ("Order Completed", "Order Refunded")],
)
def test_purchase_and_refund_are_recognised_whatever_the_case(purchase: str, refund: str) -> None:
    engine = segstream.Engine({"segments": [{"name": "buyers", "rule": "orders >= 1"}]})
    events = pa.table(
        {
            "customer_id": ["c1", "c1", "c2"],
            "ts": [T0, T0, T0],
            "event_type": [purchase, refund, "page_view"],
            "amount": [15.0, 5.0, 0.0],
        }
    )
    result = engine.ingest(events)
    assert result.rejected.num_rows == 0
    profile = engine.profile("c1")
    assert (profile["orders"], profile["refunds"]) == (1, 1)
    assert profile["ltv"] == 10
    assert engine.profile("c2")["orders"] == 0
    assert engine.members("buyers").to_pylist() == ["c1"]


def test_json_messages_read_event_types_the_same_way() -> None:
    engine = segstream.Engine({"segments": [{"name": "buyers", "rule": "orders >= 1"}]})
    messages = [
        {"customer_id": "c1", "ts": "2024-05-01T00:00:00Z", "event_type": "Purchase", "amount": 9},
        {
            "type": "track",
            "userId": "c2",
            "event": "order completed",
            "timestamp": "2024-05-01T00:00:00Z",
            "properties": {"total": 9},
        },
    ]
    result = engine.ingest_json([json.dumps(m).encode() for m in messages])
    assert result.rejected.num_rows == 0
    assert sorted(engine.members("buyers").to_pylist()) == ["c1", "c2"]


def test_cli_counts_a_capitalised_purchase(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("segments:\n  - name: buyers\n    rule: orders >= 1\n")
    data = tmp_path / "et.csv"
    data.write_text("customer_id,ts,event_type,amount\nc1,2024-05-01,Purchase,15\n")
    done = run_cli("segment", rules, data, "--out", tmp_path / "o1")
    assert done.returncode == 0, done.stderr
    import pyarrow.parquet as pq

    members = pq.read_table(tmp_path / "o1" / "memberships.parquet").to_pylist()
    assert members == [{"customer_id": "c1", "buyers": True}]


@pytest.mark.parametrize("name", ["ltv", "customer_id", "orders"])
def test_a_segment_named_like_an_output_column_is_a_rule_error(name: str, tmp_path: Path) -> None:
    spec = {"segments": [{"name": name, "rule": "orders >= 1"}]}
    with pytest.raises(segstream.RuleError, match="output column"):
        segstream.Engine(spec)
    rules = tmp_path / "r.yaml"
    rules.write_text(f"segments:\n  - name: {name}\n    rule: orders >= 1\n")
    done = run_cli("check", rules)
    assert done.returncode != 0
    assert "output column" in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("rule", "hint"),
    [
        ("last_refund_at = NULL", "IS NULL"),
        ("last_refund_at <> NULL", "IS NOT NULL"),
        ("NULL < ltv", "IS NULL"),
    ],
)
def test_a_comparison_with_null_is_a_rule_error(rule: str, hint: str) -> None:
    with pytest.raises(segstream.RuleError, match=hint):
        segstream.Engine({"segments": [{"name": "s", "rule": rule}]})


def test_an_unknown_stage_is_a_rule_error_with_a_suggestion() -> None:
    spec = {
        "segments": [{"name": "lapsed_gold", "rule": "stage('vip') = 'gld'"}],
        "lifecycles": [
            {
                "name": "vip",
                "stages": [
                    {"name": "gold", "rule": "ltv >= 100"},
                    {"name": "silver", "rule": "ltv >= 10"},
                ],
            }
        ],
    }
    with pytest.raises(segstream.RuleError, match="gold") as err:
        segstream.Engine(spec)
    assert "gld" in str(err.value)
    spec["segments"][0]["rule"] = "stage('vip') = 'gold'"
    segstream.Engine(spec)


def test_a_damaged_checkpoint_loads_identical_or_not_at_all(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rules = {
        "segments": [
            {"name": "buyers", "rule": "orders >= 1"},
            {"name": "recent", "rule": "purchases(within => INTERVAL '30 days') >= 1"},
        ],
        "lifecycles": [{"name": "tier", "stages": [{"name": "gold", "rule": "ltv >= 50"}]}],
    }
    engine = segstream.Engine(rules)
    engine.ingest(
        pa.table(
            {
                "customer_id": ["a", "b", "a", "c"],
                "ts": [T0, T0, T0, T0],
                "event_type": ["purchase", "refund", "purchase", "page_view"],
                "amount": [30.0, 5.0, 25.5, 0.0],
                "categories": [["kitchen"], [], ["toys", "kitchen"], []],
            }
        )
    )
    path = tmp_path / "state.arrow"
    engine.save(path)
    want = engine.snapshot()
    data = bytearray(path.read_bytes())
    import random

    rng = random.Random(7)
    bits = rng.sample(range(len(data) * 8), min(600, len(data) * 8))
    damaged = tmp_path / "damaged.arrow"
    loaded = 0
    for bit in bits:
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        damaged.write_bytes(bytes(flipped))
        try:
            got = segstream.Engine.load(damaged)
        except segstream.CheckpointError:
            continue
        loaded += 1
        # A flip the checksum cannot see (padding, unused bytes) changes nothing.
        assert got.snapshot().equals(want), f"bit {bit} loaded a different state"
        assert got.clock == engine.clock
    assert loaded < len(bits)
    # Damage is a CheckpointError, not a crash report on stderr.
    assert "panicked" not in capfd.readouterr().err


# -- issue 15, problems 1, 3, 4, 5 and 9: the bulk readers ---------------------------------

BUYERS = "segments:\n  - name: buyers\n    rule: orders >= 1\n"


def _bulk(tmp_path: Path, csv: str, *args: object, rules: str = BUYERS):
    import pyarrow.parquet as pq

    (tmp_path / "r.yaml").write_text(rules)
    (tmp_path / "in.csv").write_text(csv)
    out = tmp_path / "out"
    done = run_cli("segment", tmp_path / "r.yaml", tmp_path / "in.csv", "--out", out, *args)
    if not (out / "summary.json").exists():
        return done, None, None
    summary = json.loads((out / "summary.json").read_text())
    members = {
        r["customer_id"]: r["buyers"]
        for r in pq.read_table(out / "memberships.parquet").to_pylist()
    }
    return done, summary, members


def test_order_is_a_signal_with_a_warning_unless_the_rules_map_it(tmp_path: Path) -> None:
    csv = "customer_id,ts,event_type,amount\nc1,2024-05-01,order,15\nc2,2024-05-01,Sale,15\n"
    done, summary, members = _bulk(tmp_path, csv)
    assert done.returncode == 0, done.stderr
    assert members == {"c1": False, "c2": False}
    assert "event_type 'order'" in done.stderr and "event_types:" in done.stderr
    table = {e["event_type"]: (e["rows"], e["read_as"]) for e in summary["event_types"]}
    assert table == {"order": (1, "ignored"), "Sale": (1, "ignored")}
    mapped = BUYERS + "event_types: {purchase: [order, sale]}\n"
    done, summary, members = _bulk(tmp_path, csv, rules=mapped)
    assert done.returncode == 0, done.stderr
    assert members == {"c1": True, "c2": True}
    assert "warning" not in done.stderr
    assert {e["read_as"] for e in summary["event_types"]} == {"purchase"}


def test_csv_ids_keep_their_leading_zeros(tmp_path: Path) -> None:
    csv = "customer_id,ts,amount\n00123,2024-05-01,15\n123,2024-05-01,15\n"
    done, summary, members = _bulk(tmp_path, csv)
    assert done.returncode == 0, done.stderr
    assert members == {"00123": True, "123": True}
    done, summary, members = _bulk(tmp_path, csv, "--id-type", "int")
    assert done.returncode == 0, done.stderr
    assert summary["customers"] == 1


def test_a_run_that_rejects_every_row_exits_3_with_the_reasons(tmp_path: Path) -> None:
    csv = "customer_id,ts,total\nc1,2024-05-01,15\nc2,2024-05-01,9\n"
    done, summary, _ = _bulk(tmp_path, csv)
    assert done.returncode == 3
    assert "every row was rejected (2 of 2)" in done.stderr
    assert "2  amount is required" in done.stderr
    assert (summary["rows_read"], summary["rows_applied"], summary["rows_rejected"]) == (2, 0, 2)
    done, summary, members = _bulk(tmp_path, csv, "--map", "amount=total")
    assert done.returncode == 0, done.stderr
    assert members == {"c1": True, "c2": True}


def test_max_rejected_share_fails_a_run_above_it(tmp_path: Path) -> None:
    csv = "customer_id,ts,amount\nc1,2024-05-01,15\nc2,2024-05-01,x\nc3,2024-05-01,1\n"
    done, _, _ = _bulk(tmp_path, csv, "--max-rejected-share", "0.5")
    assert done.returncode == 0, done.stderr
    done, summary, _ = _bulk(tmp_path, csv, "--max-rejected-share", "0.2")
    assert done.returncode == 3
    assert "more than --max-rejected-share 0.2" in done.stderr
    assert summary["rows_applied"] == 2


def test_timestamps_are_read_row_by_row(tmp_path: Path) -> None:
    csv = (
        "customer_id,ts,amount\n"
        "c1,2024-05-01T10:00:00+02:00,1\n"
        "c2,2024-05-01 10:00:00,1\n"
        "c3,1714557600000,1\n"
        "c4,01/05/2024,1\n"
        "c5,9999-01-01,1\n"
        "c6,2024-05-02,1\n"
    )
    done, summary, members = _bulk(tmp_path, csv)
    assert done.returncode == 0, done.stderr
    assert members == {"c1": True, "c2": True, "c3": True, "c6": True}
    import pyarrow.parquet as pq

    rejected = pq.read_table(tmp_path / "out" / "rejected.parquet").to_pylist()
    assert [(r["source_row"], r["customer_id"]) for r in rejected] == [(3, "c4"), (4, "c5")]
    assert "`01/05/2024` is not a time" in rejected[0]["reason"]
    assert str(tmp_path / "in.csv") == rejected[0]["source_file"]
    assert "max_future" in rejected[1]["reason"]
    # The 9999 row did not move the clock: the run is as of the latest valid event.
    assert summary["as_of"] == "2024-05-02T00:00:00+00:00"


def test_epoch_seconds_need_declaring_and_then_read_right(tmp_path: Path) -> None:
    csv = "customer_id,ts,amount\nc1,1714557600,1\n"
    done, _, _ = _bulk(tmp_path, csv)
    assert done.returncode == 3
    assert "--ts-unit s" in done.stderr
    done, summary, members = _bulk(tmp_path, csv, "--ts-unit", "s")
    assert done.returncode == 0, done.stderr
    assert summary["as_of"] == "2024-05-01T10:00:00+00:00"


def test_zone_less_times_in_the_declared_zone(tmp_path: Path) -> None:
    csv = "customer_id,ts,amount\nc1,2024-05-01 12:00:00,1\nc2,2024-05-01T09:00:00Z,1\n"
    done, summary, _ = _bulk(tmp_path, csv, "--tz", "Europe/Berlin")
    assert done.returncode == 0, done.stderr
    assert summary["as_of"] == "2024-05-01T10:00:00+00:00"
    done, _, _ = _bulk(tmp_path, csv, "--tz", "Mars/Olympus")
    assert done.returncode != 0 and "unknown time zone" in done.stderr


def test_a_misspelt_key_names_the_yaml_line_and_the_segment(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "segments:\n  - name: a\n    rule: orders >= 1\n"
        "  - name: b\n    rule: orders >= 2\n    holdot: 10\n"
    )
    done = run_cli("check", rules)
    assert done.returncode == 2
    assert "line 6 column 5 in segment `b`" in done.stderr
    assert "unknown field `holdot`" in done.stderr
    assert "column 1" not in done.stderr.replace("column 5", "")


def test_file_errors_name_the_file_and_the_row(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    (tmp_path / "r.yaml").write_text(BUYERS)
    folder = tmp_path / "in"
    folder.mkdir()
    rows = pa.table({"customer_id": [f"c{i}" for i in range(2000)], "ts": [T0] * 2000})
    rows = rows.append_column("amount", pa.array([1.0] * 2000))
    pq.write_table(rows, folder / "a.parquet")
    (folder / "b.csv").write_text("")  # an empty file in the set: skipped
    done = run_cli("segment", tmp_path / "r.yaml", folder, "--out", tmp_path / "o")
    assert done.returncode == 0, done.stderr
    assert "b.csv: empty file, skipped" in done.stderr
    pq.write_table(rows, folder / "c.parquet", compression="none")
    damaged = bytearray((folder / "c.parquet").read_bytes())
    for i in range(200, 1200):
        damaged[i] ^= 0xFF
    (folder / "c.parquet").write_bytes(bytes(damaged))
    done = run_cli("segment", tmp_path / "r.yaml", folder, "--out", tmp_path / "o")
    assert done.returncode == 1
    assert "c.parquet" in done.stderr
    (folder / "c.parquet").unlink()
    (folder / "d.csv").write_bytes(b"customer_id,ts,amount\nc1,2024-05-01,1\nc\xff2,2024-05-01,1\n")
    done = run_cli("segment", tmp_path / "r.yaml", folder, "--out", tmp_path / "o")
    assert done.returncode == 1
    assert "d.csv" in done.stderr and "line 3" in done.stderr and "UTF8" in done.stderr
