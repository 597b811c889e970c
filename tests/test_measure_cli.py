"""`segstream measure` end to end, as a subprocess on files written here: the uplift it
writes is the hand-worked table whatever the file order, its counters agree with the
changes it writes, and lifecycle rows count the replay's changes."""

from __future__ import annotations

import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from test_measure_uplift import (
    DAY,
    HOUR,
    KITCHEN,
    SPECS,
    T0,
    Row,
    pick_groups,
    recompute,
    table,
)

LIFECYCLE = """
lifecycles:
  - name: tier
    stages:
      - {name: gold, rule: ltv >= 100}
      - {name: silver, rule: ltv >= 20}
"""


def run_cli(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segstream.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_shuffled(path: Path, rows: list[Row], parts: int = 3) -> list[Path]:
    rows = rows[:]
    random.Random(7).shuffle(rows)
    files = []
    for i in range(parts):
        f = path / f"events-{i}.parquet"
        pq.write_table(table(rows[i::parts]), f)
        files.append(f)
    return files


def test_measure_writes_the_hand_worked_uplift(tmp_path: Path) -> None:
    (t1, t2, t3, t4), (h1, h2) = pick_groups(4, 2)
    at = T0 + 10 * HOUR
    rows: list[Row] = [(c, at, "purchase", 5.0, ["kitchen"]) for c in (t1, t2, t3, h1, h2)]
    rows += [
        (t3, at + 1 * DAY, "unsubscribe", 0.0, []),
        (t3, at + 2 * DAY, "purchase", 80.0, ["tableware"]),
        (t3, at + 3 * DAY, "refund", 20.0, ["tableware"]),
        (h1, at + 5 * DAY, "purchase", 10.0, ["tableware"]),
        (t4, at + 10 * DAY, "purchase", 5.0, ["kitchen"]),
        (t1, at + 14 * DAY, "purchase", 50.0, ["tableware"]),
        (t2, at + 14 * DAY + 1, "purchase", 30.0, ["tableware"]),
    ]
    rules = tmp_path / "rules.yaml"
    rules.write_text(KITCHEN + LIFECYCLE)
    files = write_shuffled(tmp_path, rows)
    out = tmp_path / "out"
    done = run_cli(
        "measure", rules, *files, "--from", "2024-01-01", "--to", "2024-01-31", "--out", out
    )
    assert done.returncode == 0, done.stderr
    assert "uplift" in done.stdout and "lifecycles" in done.stdout
    [u] = pq.read_table(out / "uplift.parquet").to_pylist()
    assert (u["treatment_entries"], u["holdout_entries"]) == (3, 2)
    assert (u["treatment_conversions"], u["holdout_conversions"]) == (2, 1)
    assert (u["treatment_revenue"], u["holdout_revenue"]) == (Decimal("110.00"), Decimal("10.00"))
    assert u["incremental_revenue"] == Decimal("95.0000")
    assert u["immature_entries"] == 1
    changes = pq.read_table(out / "changes.parquet")
    assert "change_id" in changes.column_names
    # Every change from the first event on: the six kitchen entries are there.
    kitchen = [r for r in changes.to_pylist() if r["segment"] == "kitchen"]
    assert sorted(r["customer_id"] for r in kitchen) == sorted([t1, t2, t3, t4, h1, h2])
    lifecycles = {
        (r["lifecycle"], r["stage"]): r
        for r in pq.read_table(out / "lifecycles.parquet").to_pylist()
    }
    # ltv: t1 55, t2 35, t3 65 (80 - 20 + 5), h1 15, h2 5, t4 5 -> silver t1, t2, t3.
    assert lifecycles[("tier", "silver")]["members_at_end"] == 3
    assert lifecycles[("tier", "gold")]["members_at_end"] == 0
    assert lifecycles[("tier", None)]["members_at_end"] == 3
    assert lifecycles[("tier", "silver")]["entries"] == 3


def test_measure_counters_agree_with_the_changes_it_writes(tmp_path: Path) -> None:
    rng = random.Random(11)
    kinds = ["purchase", "purchase", "refund", "page_view", "signup", "unsubscribe"]
    rows: list[Row] = []
    for _ in range(400):
        kind = rng.choice(kinds)
        money = kind in ("purchase", "refund")
        rows.append(
            (
                f"c{rng.randrange(30)}",
                T0 + rng.randrange(30 * 24) * HOUR + rng.randrange(3) * 1000,
                kind,
                rng.randrange(5000) / 100 if money else 0.0,
                rng.sample(["kitchen", "tableware", "garden"], rng.randrange(3)) if money else [],
            )
        )
    from test_measure_uplift import RANDOM_RULES

    rules = tmp_path / "rules.yaml"
    rules.write_text(RANDOM_RULES)
    files = write_shuffled(tmp_path, rows, parts=2)
    out = tmp_path / "out"
    done = run_cli(
        "measure", rules, *files, "--from", "2023-12-01", "--to", "2024-03-01", "--out", out
    )
    assert done.returncode == 0, done.stderr
    changes = pq.read_table(out / "changes.parquet").to_pylist()
    clock = max(r[1] for r in rows)
    want = recompute(changes, sorted(rows, key=lambda r: r[1]), clock)
    got = {r["segment"]: r for r in pq.read_table(out / "uplift.parquet").to_pylist()}
    assert set(got) == set(SPECS)
    for seg, w in want.items():
        assert (got[seg]["treatment_entries"], got[seg]["holdout_entries"]) == tuple(w["n"])
        assert (got[seg]["treatment_conversions"], got[seg]["holdout_conversions"]) == tuple(w["x"])
        assert got[seg]["immature_entries"] == w["immature"]
    assert sum(sum(w["n"]) for w in want.values()) > 10  # the history did measure something


def test_measure_refuses_a_period_that_is_not_whole_days(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(KITCHEN)
    f = tmp_path / "e.parquet"
    pq.write_table(table([("a", T0, "purchase", 1.0, ["kitchen"])]), f)
    done = run_cli("measure", rules, f, "--from", "2024-01-01T10:00:00", "--to", "2024-02-01")
    assert done.returncode == 2
    assert "midnight UTC" in done.stderr
    done = run_cli("measure", rules, f, "--from", "2024-02-01", "--to", "2024-01-01")
    assert done.returncode == 2 and "after" in done.stderr
