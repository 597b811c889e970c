"""Time-driven segments: a customer becomes dormant with no new event, by `advance_to` alone.

The dormant rule (examples/rules/dormant.yaml) is `orders >= 2 AND last_purchase_at <=
now() - INTERVAL '90 days'`. After two orders, nothing is sent for the customer again;
moving the engine clock is enough, and the change is stamped at the exact instant the
rule became true (last order + 90 days), with cause `time`. Exits non-zero if not.
"""

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import segstream

RULES = Path(__file__).resolve().parent / "rules" / "dormant.yaml"

engine = segstream.Engine(str(RULES))
first, last = datetime(2024, 1, 5, 12, tzinfo=UTC), datetime(2024, 2, 1, 18, tzinfo=UTC)
engine.ingest(
    pa.table(
        {
            "customer_id": ["c1", "c1", "c2"],
            "ts": pa.array([first, last, last], pa.timestamp("ms", tz="UTC")),
            "event_type": ["purchase", "purchase", "purchase"],
            "amount": [25.0, 40.0, 99.0],
        }
    )
)
expected_at = last + timedelta(days=90)
print(f"members on {last:%Y-%m-%d}:", engine.members("dormant").to_pylist(), "(expected [])")

# A day before the rule can hold, nothing happens; a month later, c1 entered on the dot.
early = engine.advance_to(expected_at - timedelta(days=1))
later = engine.advance_to(expected_at + timedelta(days=30))
rows = later.select(["customer_id", "segment", "change", "at", "cause"]).to_pylist()
for row in rows:
    print(row)
expected = [
    {
        "customer_id": "c1",
        "segment": "dormant",
        "change": "enter",
        "at": expected_at,
        "cause": "time",
    }
]
print(
    f"expected: c1 enters dormant at {expected_at:%Y-%m-%d %H:%M} UTC (cause time); "
    "c2 has one order only and stays out"
)
ok = early.num_rows == 0 and rows == expected and engine.members("dormant").to_pylist() == ["c1"]
sys.exit(0 if ok else 1)
