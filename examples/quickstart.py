"""Quickstart: segment three purchases with one rule, and print who changed and who is in.

Run with `python examples/quickstart.py`; it exits non-zero if the result is not the one it
prints as expected (CI runs every example as a smoke test).
"""

import sys
from datetime import UTC, datetime

import pyarrow as pa
import segstream

engine = segstream.Engine("segments: [{name: big_spenders, rule: ltv >= 100}]")
events = pa.table(
    {
        "customer_id": ["c1", "c2", "c1"],
        "ts": pa.array([datetime(2024, 5, 1, h, tzinfo=UTC) for h in (9, 10, 11)]),
        "amount": [60.0, 30.0, 45.0],  # event_type defaults to purchase
    }
)
result = engine.ingest(events)
print(result.changes.select(["customer_id", "segment", "change", "at", "cause"]).to_pylist())
members = engine.members("big_spenders").to_pylist()
print("members:", members, "(expected ['c1']: $60 + $45 >= $100)")
sys.exit(0 if members == ["c1"] and result.changes.num_rows == 1 else 1)
