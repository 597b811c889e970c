"""Measurement in the service, without Kafka: the worker's uplift over its partitions
equals one engine's over the same events, and alias messages merge profiles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("segstream._segstream")
import segstream  # noqa: E402
from segstream.service.checkpoints import CheckpointStore  # noqa: E402
from segstream.service.processor import Processor  # noqa: E402
from segstream.service.settings import ServiceSettings  # noqa: E402
from test_measure_uplift import KITCHEN  # noqa: E402


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def event(who: str, day: int, amount: float, category: str, kind: str = "purchase") -> bytes:
    ts = f"2024-05-{day:02d}T10:00:00Z"
    body = {"customer_id": who, "ts": ts, "event_type": kind, "amount": amount}
    return json.dumps({**body, "categories": [category]}).encode()


def history() -> list[tuple[int, bytes]]:
    out = [(i % 2, event(f"c{i}", 1, 5.0, "kitchen")) for i in range(12)]
    out += [(i % 2, event(f"c{i}", 3, 20.0 + i, "tableware")) for i in range(12) if i % 3]
    out += [(p, event("late", 25, 1.0, "garden")) for p in (0, 1)]  # closes the windows
    return out


def test_uplift_over_partitions_equals_one_engine(tmp_path: Path) -> None:
    settings = ServiceSettings(rules=KITCHEN, state_dir=str(tmp_path))
    proc = Processor(settings, CheckpointStore(settings.state_dir, settings.app_id))
    proc.assign({0, 1})
    offsets = {0: 0, 1: 0}
    for p, value in history():
        proc.process([Msg("events", p, offsets[p], None, value)])
        offsets[p] += 1
    one = segstream.Engine(KITCHEN)
    for _, value in history():
        one.ingest_json([value])
    got = proc.uplift("2024-05-01", "2024-06-01")
    want = one.uplift("2024-05-01", "2024-06-01").to_pylist()
    assert got == want
    assert got[0]["treatment_entries"] + got[0]["holdout_entries"] == 12
    assert got[0]["treatment_conversions"] + got[0]["holdout_conversions"] == 8
    with pytest.raises(ValueError, match="midnight"):
        proc.uplift("2024-05-01T10:00:00", "2024-06-01")
