"""What counting conversions costs evaluated ingest: the engine benchmark's rules and data
(benches/engine_throughput.py), with and without a `conversion` spec on three segments,
runs alternating so that a busy machine slows both alike.

    .venv/bin/python benches/measure_overhead.py                       # 200k customers, 4M events
    .venv/bin/python benches/measure_overhead.py --customers N --events N --rounds N

Prints events/s of each run, the medians and the slowdown in percent.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_throughput as bench  # noqa: E402
import segstream  # noqa: E402

MEASURED = {
    "cross_sell_tableware": {"within": "14 days", "category": "tableware"},
    "frequent_buyers": {"within": "7 days"},
    "browsers": {"within": "7 days", "category": "kitchen"},
}


def with_conversions(rules: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(rules)
    for seg in new["segments"]:
        if seg["name"] in MEASURED:
            seg["holdout"] = 10
            seg["conversion"] = MEASURED[seg["name"]]
    return new


def run(rules: dict[str, Any], batches: list[Any]) -> float:
    engine = segstream.Engine(rules)
    seconds, _, _ = bench.ingest_all(engine, batches)
    return sum(b.num_rows for b in batches) / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--events", type=int, default=4_000_000)
    ap.add_argument("--batch-rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    batches = bench.make_events(args.customers, args.events, args.batch_rows, "int")["batches"]
    base_rules = copy.deepcopy(bench.RULES)
    base_rules["segments"] = [
        {**s, "holdout": 10} if s["name"] in MEASURED else s for s in base_rules["segments"]
    ]
    measured_rules = with_conversions(bench.RULES)
    base: list[float] = []
    measured: list[float] = []
    for i in range(args.rounds):
        base.append(run(base_rules, batches))
        measured.append(run(measured_rules, batches))
        print(f"round {i + 1}: without {base[-1]:,.0f} ev/s, with {measured[-1]:,.0f} ev/s")
    b, m = statistics.median(base), statistics.median(measured)
    probe = segstream.Engine(measured_rules)
    bench.ingest_all(probe, batches)
    entries = sum(
        r["treatment_entries"] + r["holdout_entries"] + r["immature_entries"]
        for r in probe.uplift(bench.T0, bench.T0 + 400 * bench.DAY).to_pylist()
    )
    print(f"median without conversions: {b:,.0f} events/s")
    print(f"median with conversions on three segments: {m:,.0f} events/s ({entries:,} entries)")
    print(f"slowdown: {(1 - m / b) * 100:.1f}%")


if __name__ == "__main__":
    main()
