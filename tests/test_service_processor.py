"""The service's batch processor without Kafka: replays, dead letters, checkpoints, time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

pytest.importorskip("segstream._segstream")
from segstream.service.checkpoints import CheckpointStore  # noqa: E402
from segstream.service.clock import tick_targets  # noqa: E402
from segstream.service.codec import encode_changes, write_arrow_ipc  # noqa: E402
from segstream.service.partition_state import merge_stats  # noqa: E402
from segstream.service.processor import Processor  # noqa: E402
from segstream.service.settings import ServiceSettings  # noqa: E402

RULES = """
segments:
  - name: big_spender
    rule: ltv >= 100
  - name: dormant
    rule: orders >= 1 AND last_purchase_at < now() - INTERVAL '30 days'
"""


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def purchase(who: str, amount: float, day: int = 1) -> bytes:
    ts = f"2024-05-{day:02d}T10:00:00Z"
    return json.dumps({"customer_id": who, "ts": ts, "amount": amount}).encode()


@pytest.fixture()
def processor(tmp_path: Path) -> Processor:
    settings = ServiceSettings(rules=RULES, state_dir=str(tmp_path), max_message_bytes=1000)
    proc = Processor(settings, CheckpointStore(settings.state_dir, settings.app_id))
    proc.assign({0, 1})
    return proc


def test_batch_applies_and_publishes_changes(processor: Processor) -> None:
    out = processor.process([Msg("events", 0, 0, b"a", purchase("a", 150.0))])
    rows = [json.loads(v) for t in out.changes for _, v in encode_changes(t)]
    assert [(r["customer_id"], r["segment"], r["change"]) for r in rows] == [
        ("a", "big_spender", "enter")
    ]
    assert rows[0]["at"] == "2024-05-01T10:00:00.000Z" and len(rows[0]["change_id"]) == 16
    assert processor.stats() == {"big_spender": 1, "dormant": 0}


def test_replayed_offsets_are_not_counted_twice(processor: Processor) -> None:
    batch = [Msg("events", 0, i, b"a", purchase("a", 30.0)) for i in range(3)]
    processor.process(batch)
    again = processor.process(batch + [Msg("events", 0, 3, b"a", purchase("a", 30.0))])
    assert again.skipped == 3 and again.applied == 1
    profile = processor.profile("a")
    assert profile is not None and profile["orders"] == 4


def test_messages_of_partitions_not_owned_are_left_alone(processor: Processor) -> None:
    out = processor.process([Msg("events", 7, 0, b"z", purchase("z", 500.0))])
    assert out.skipped == 1 and processor.profile("z") is None


def test_bad_messages_become_dead_letters_in_place(processor: Processor) -> None:
    batch = [
        Msg("events", 1, 0, b"a", purchase("a", 10.0)),
        Msg("events", 1, 1, b"a", b"{not json"),
        Msg("events", 1, 2, b"a", b"x" * 2000),
        Msg("events", 1, 3, b"a", None),
        Msg("events", 1, 4, b"a", b"\xff\xff\xff\xffbroken arrow"),
        Msg("events", 1, 5, b"a", purchase("a", 10.0)),
    ]
    out = processor.process(batch)
    reasons = {d.offset: d.reason for d in out.dead_letters}
    assert set(reasons) == {1, 2, 3, 4}
    assert "exceeds the 1000-byte limit" in reasons[2]
    assert "Arrow IPC" in reasons[4]
    key, value = out.dead_letters[0].encode()
    body = json.loads(value)
    assert key == b"a" and body["topic"] == "events" and body["partition"] == 1
    assert processor.partitions[1].applied == {"events": 5}
    assert processor.profile("a")["orders"] == 2  # type: ignore[index]


def test_arrow_ipc_events_and_traits(processor: Processor) -> None:
    events = pa.table(
        {
            "customer_id": ["b", "b"],
            "ts": pa.array([1714557600000, 1714557700000], pa.timestamp("ms", tz="UTC")),
            "amount": [60.0, 60.0],
        }
    )
    out = processor.process([Msg("events", 0, 0, None, write_arrow_ipc(events))])
    assert not out.dead_letters
    assert processor.profile("b")["orders"] == 2  # type: ignore[index]


def test_checkpoint_restores_state_and_offsets(processor: Processor, tmp_path: Path) -> None:
    processor.process([Msg("events", 0, 41, b"a", purchase("a", 150.0))])
    commits = processor.checkpoint([0])
    assert commits[("events", 0)] == 42 and commits[("traits", 0)] == 0
    settings = processor.settings
    other = Processor(settings, CheckpointStore(settings.state_dir, settings.app_id))
    other.assign({0})
    assert other.partitions[0].applied == {"events": 41}
    assert other.resume_offsets()[("events", 0)] == 42
    assert other.process([Msg("events", 0, 41, b"a", purchase("a", 150.0))]).skipped == 1
    assert other.stats() == {"big_spender": 1, "dormant": 0}


def test_revoke_checkpoints_the_partition(processor: Processor) -> None:
    processor.process([Msg("events", 1, 0, b"a", purchase("a", 150.0))])
    processor.revoke({1})
    assert 1 not in processor.partitions
    processor.assign({1})
    assert processor.partitions[1].applied == {"events": 0}


def test_advancing_the_clock_emits_time_changes(processor: Processor) -> None:
    processor.process([Msg("events", 0, 0, b"a", purchase("a", 5.0, day=1))])
    later = datetime(2024, 7, 1, tzinfo=UTC)
    out = processor.advance({0: later})
    rows = [json.loads(v) for t in out.changes for _, v in encode_changes(t)]
    assert [(r["segment"], r["change"], r["cause"]) for r in rows] == [("dormant", "enter", "time")]


def test_tick_targets() -> None:
    t1, t2 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    clocks = {0: t1, 1: t2, 2: None}
    assert tick_targets("watermark", clocks, lambda p: True) == {0: t2}
    assert tick_targets("watermark", clocks, lambda p: p != 0) == {}
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert tick_targets("wall", clocks, lambda p: False, now=now) == {0: now, 1: now, 2: now}


def test_merge_stats() -> None:
    parts = [{"a": 1, "tier": {"gold": 1}}, {"a": 2, "tier": {"gold": 1, "silver": 3}}]
    assert merge_stats(parts) == {"a": 3, "tier": {"gold": 2, "silver": 3}}


def test_checkpoint_under_other_rules_is_brought_up_to_date(
    processor: Processor, tmp_path: Path
) -> None:
    processor.process([Msg("events", 0, 0, b"a", purchase("a", 150.0))])
    processor.checkpoint([0])
    rules_v2 = RULES + "  - name: whale\n    rule: ltv >= 120\n"
    settings = ServiceSettings(rules=rules_v2, state_dir=processor.settings.state_dir)
    other = Processor(settings, CheckpointStore(settings.state_dir, settings.app_id))
    out = other.assign({0})
    rows = [json.loads(v) for t in out.changes for _, v in encode_changes(t)]
    assert [(r["segment"], r["change"], r["cause"]) for r in rows] == [("whale", "enter", "rules")]
    assert other.partitions[0].applied == {"events": 0}
