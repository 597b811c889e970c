"""Engine throughput, time-driven evaluation and state size, in memory (no files).

    .venv/bin/python benches/engine_throughput.py                 # 1M customers, 20M events
    .venv/bin/python benches/engine_throughput.py --small         # a quick try
    .venv/bin/python benches/engine_throughput.py --customers N --events N --advance-customers N

Seeded numpy data as pyarrow RecordBatches of ~1M rows (customer_id, ts timestamp[ms, UTC],
event_type, amount float64, categories list<utf8>), then:

  (i)   ingest events/s through `Engine.ingest`, int64 ids and string ids, with a realistic
        rule set of 10 segments and a VIP lifecycle (RULES below); events in time order,
        so timers fire during ingest as the clock moves, as in a stream;
  (ii)  the same per-customer aggregation (ltv, orders, refunds, first/last purchase) in
        pandas (groupby), Polars (`pl.from_arrow` then `group_by().agg()`), NumPy
        (bincount / ufunc.at, int ids) and Pathway (rows pushed by a `pw.io.python` subject,
        `groupby().reduce()`, all of it timed) over the same batches, the ratio to segstream
        (pandas and Polars both with and without the conversion from Arrow), and a check
        that the numbers agree with `engine.snapshot()`, customer by customer; plus
        segstream with a one-segment rule over only those aggregates. Pathway is much
        slower, so it runs on the first --pathway-events events (2M by default) and is
        checked against an aggregates-only engine over those; it is skipped, saying so, if
        not installed (`pip install -r benches/requirements.txt`, as `make bench` does);
  (iii) `advance_to` with --advance-customers customers (one purchase each, ingested with a
        large allowed_lateness so no timer fires during ingest) of which 1% flip
        `last_purchase_at < now() - INTERVAL '90 days'` inside the advanced window;
  (iv)  evaluation rate: customers x nodes / s of `replace_rules` (same rules, one
        threshold changed: re-evaluates every customer on every node), and `advance_to`
        with every customer due;
  (v)   bytes of state per customer: `engine.memory()` and RSS growth over the ingest;
        peak RSS of the process, taken before Pathway runs.

Each part runs in its own subprocess, so RSS growth is measured from a clean process. All
times are wall clock (time.perf_counter). The figures are printed as a table at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

DAY = 86_400_000
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
SPAN_DAYS = 366
SEED = 20240101
EVENT_TYPES = ["purchase", "refund", "page_view"]
EVENT_P = [0.85, 0.05, 0.10]
CATEGORIES = [
    "kitchen", "tableware", "grocery", "cookware", "garden", "toys", "books", "beauty",
    "sports", "electronics", "apparel", "shoes", "pets", "baby", "office", "music",
    "outdoor", "health", "auto", "crafts",
]  # fmt: skip

RULES: dict[str, Any] = {
    "currency_scale": 2,
    "allowed_lateness": "1 hour",
    "segments": [
        {"name": "lapsed", "rule": "last_purchase_at < now() - INTERVAL '90 days'"},
        {
            "name": "dormant",
            "rule": "orders >= 2 AND last_purchase_at < now() - INTERVAL '90 days'",
        },
        {
            "name": "lapsed_vip",
            "rule": "stage('vip_tier') = 'gold' AND last_purchase_at < now() - INTERVAL '60 days'",
        },
        {
            "name": "one_and_done",
            "rule": "orders = 1 AND first_purchase_at < now() - INTERVAL '180 days'",
        },
        {
            "name": "cross_sell_tableware",
            "rule": "has_category('kitchen') AND NOT has_category('tableware') "
            "AND last_purchase_at(category => 'kitchen') <= now() - INTERVAL '30 days'",
        },
        {"name": "frequent_buyers", "rule": "purchases(within => INTERVAL '30 days') >= 3"},
        {"name": "recent_big_spender", "rule": "spend(within => INTERVAL '30 days') >= 300"},
        {
            "name": "browsers",
            "rule": "events('page_view', within => INTERVAL '7 days') >= 2 "
            "AND purchases(within => INTERVAL '30 days') = 0",
        },
        {
            "name": "suppress_refunders",
            "rule": "refunds >= 2 OR (refunds >= 1 AND refunded * 2 >= gross_spend)",
        },
        {"name": "high_value_repeaters", "rule": "orders >= 3 AND aov >= 100"},
    ],
    "lifecycles": [
        {
            "name": "vip_tier",
            "stages": [
                {"name": "gold", "rule": "ltv >= 2000"},
                {"name": "silver", "rule": "ltv >= 1000"},
                {"name": "bronze", "rule": "ltv >= 250"},
                {"name": "regular", "rule": "orders >= 1"},
            ],
        }
    ],
}
NODES = len(RULES["segments"]) + len(RULES["lifecycles"])
RULE_EXPRESSIONS = len(RULES["segments"]) + sum(len(lc["stages"]) for lc in RULES["lifecycles"])

# Only the aggregates that pandas computes too: no time, no keyed state.
AGG_ONLY_RULES: dict[str, Any] = {
    "currency_scale": 2,
    "segments": [
        {
            "name": "any",
            "rule": "orders >= 0 AND refunds >= 0 AND ltv >= -1000000000 "
            "AND coalesce(first_purchase_at <= last_purchase_at, TRUE)",
        }
    ],
}


def tweaked(rules: dict[str, Any]) -> dict[str, Any]:
    """The same rules with the gold threshold moved: same needs, everyone re-evaluated."""
    new = copy.deepcopy(rules)
    new["lifecycles"][0]["stages"][0]["rule"] = "ltv >= 2500"
    return new


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def release_arrow_pool() -> None:
    pa.default_memory_pool().release_unused()


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

SCHEMA_FIELDS = [
    ("ts", pa.timestamp("ms", tz="UTC")),
    ("event_type", pa.utf8()),
    ("amount", pa.float64()),
    ("categories", pa.list_(pa.utf8())),
]


def make_events(customers: int, events: int, batch_rows: int, id_kind: str) -> dict[str, Any]:
    """Seeded events in time order, as batches plus the flat numpy columns for pandas."""
    rng = np.random.default_rng(SEED)
    weights = rng.lognormal(0.0, 1.0, customers)
    weights /= weights.sum()
    cid = rng.choice(customers, size=events, p=weights).astype(np.int64)
    ts = np.sort(rng.integers(T0, T0 + SPAN_DAYS * DAY, events, dtype=np.int64))
    et = rng.choice(len(EVENT_TYPES), size=events, p=EVENT_P).astype(np.int8)
    amount = np.round(rng.lognormal(np.log(40.0), 0.8, events), 2)
    amount[et == 2] = 0.0
    ncat = rng.integers(1, 3, events, dtype=np.int32)  # 1 or 2 categories per event
    offsets = np.zeros(events + 1, dtype=np.int64)
    np.cumsum(ncat, out=offsets[1:])
    cat_idx = rng.integers(0, len(CATEGORIES), int(offsets[-1]), dtype=np.int32)

    cat_names = pa.array(CATEGORIES, pa.utf8())
    type_names = pa.array(EVENT_TYPES, pa.utf8())
    str_ids = None
    if id_kind == "str":
        str_ids = pa.array([f"c{i:09d}" for i in range(customers)], pa.utf8())
    batches = []
    for lo in range(0, events, batch_rows):
        hi = min(events, lo + batch_rows)
        if str_ids is not None:
            ids = str_ids.take(pa.array(cid[lo:hi]))
        else:
            ids = pa.array(cid[lo:hi], pa.int64())
        o = offsets[lo : hi + 1]
        cats = pa.ListArray.from_arrays(
            pa.array((o - o[0]).astype(np.int32)),
            cat_names.take(pa.array(cat_idx[o[0] : o[-1]])),
        )
        cols = [
            ids,
            pa.array(ts[lo:hi], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            type_names.take(pa.array(et[lo:hi])),
            pa.array(amount[lo:hi], pa.float64()),
            cats,
        ]
        names = ["customer_id"] + [n for n, _ in SCHEMA_FIELDS]
        batches.append(pa.RecordBatch.from_arrays(cols, names=names))
    return {"batches": batches, "cid": cid, "ts": ts, "et": et, "amount": amount}


# ---------------------------------------------------------------------------------------
# Phases (each in its own process)
# ---------------------------------------------------------------------------------------


def ingest_all(engine: Any, batches: list[pa.RecordBatch]) -> tuple[float, int, int]:
    changes = rejected = 0
    started = time.perf_counter()
    for b in batches:
        r = engine.ingest(b)
        changes += r.changes.num_rows
        rejected += r.rejected.num_rows
        del r
    return time.perf_counter() - started, changes, rejected


def pandas_aggregate(batches: list[pa.RecordBatch]) -> tuple[Any, float, float]:
    """ltv, orders, refunds, first/last purchase per customer. Returns (frame, total s, groupby s)."""  # noqa: E501
    import pandas as pd

    started = time.perf_counter()
    df = pa.Table.from_batches(batches).select(["customer_id", "ts", "event_type", "amount"])
    df = df.to_pandas()
    converted = time.perf_counter()
    is_p = (df["event_type"] == "purchase").to_numpy()
    is_r = (df["event_type"] == "refund").to_numpy()
    amount = df["amount"].to_numpy()
    work = pd.DataFrame(
        {
            "customer_id": df["customer_id"],
            "gross": np.where(is_p, amount, 0.0),
            "refunded": np.where(is_r, amount, 0.0),
            "orders": is_p.astype(np.int64),
            "refunds": is_r.astype(np.int64),
        }
    )
    res = work.groupby("customer_id", sort=False).sum()
    pur = df.loc[is_p].groupby("customer_id", sort=False)["ts"].agg(["min", "max"])
    res["ltv"] = res["gross"] - res["refunded"]
    res = res.join(pur.rename(columns={"min": "first_purchase_at", "max": "last_purchase_at"}))
    done = time.perf_counter()
    return res, done - started, done - converted


def numpy_aggregate(data: dict[str, Any], customers: int) -> tuple[dict[str, np.ndarray], float]:
    """The same with dense int ids: bincount for sums and counts, ufunc.at for min/max."""
    started = time.perf_counter()
    cid, ts, et, amount = data["cid"], data["ts"], data["et"], data["amount"]
    is_p = et == 0
    is_r = et == 1
    gross = np.bincount(cid, weights=np.where(is_p, amount, 0.0), minlength=customers)
    refunded = np.bincount(cid, weights=np.where(is_r, amount, 0.0), minlength=customers)
    orders = np.bincount(cid[is_p], minlength=customers)
    refunds = np.bincount(cid[is_r], minlength=customers)
    first = np.full(customers, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(customers, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, cid[is_p], ts[is_p])
    np.maximum.at(last, cid[is_p], ts[is_p])
    elapsed = time.perf_counter() - started
    return {
        "ltv": gross - refunded,
        "orders": orders,
        "refunds": refunds,
        "first": first,
        "last": last,
    }, elapsed


def polars_aggregate(batches: list[pa.RecordBatch]) -> tuple[Any, float, float]:
    """The same with `pl.from_arrow` and one `group_by().agg()`. Returns (frame, total s,
    group_by s); the frame is pandas, indexed by customer_id, like `pandas_aggregate`'s."""
    import polars as pl

    started = time.perf_counter()
    df = pl.from_arrow(
        pa.Table.from_batches(batches).select(["customer_id", "ts", "event_type", "amount"])
    )
    assert isinstance(df, pl.DataFrame)
    converted = time.perf_counter()
    is_p = pl.col("event_type") == "purchase"
    is_r = pl.col("event_type") == "refund"
    res = df.group_by("customer_id").agg(
        ltv=pl.col("amount").filter(is_p).sum() - pl.col("amount").filter(is_r).sum(),
        orders=is_p.sum(),
        refunds=is_r.sum(),
        first_purchase_at=pl.col("ts").filter(is_p).min(),
        last_purchase_at=pl.col("ts").filter(is_p).max(),
    )
    done = time.perf_counter()
    return res.to_pandas().set_index("customer_id"), done - started, done - converted


PATHWAY_SKIPPED = "skipped: pathway not installed (pip install -r benches/requirements.txt)"


def prefix_batches(batches: list[pa.RecordBatch], events: int) -> list[pa.RecordBatch]:
    """The first `events` rows of `batches` (the last batch sliced)."""
    out: list[pa.RecordBatch] = []
    left = events
    for b in batches:
        if left <= 0:
            break
        out.append(b if b.num_rows <= left else b.slice(0, left))
        left -= b.num_rows
    return out


def pathway_aggregate(batches: list[pa.RecordBatch], id_kind: str) -> tuple[Any, float]:
    """The same in Pathway: rows pushed from the batches by a `pw.io.python` subject (the
    fastest in-memory input of the documented ones, ahead of `pw.debug.table_from_pandas`),
    `groupby().reduce()`, run to the end by `pw.debug.table_to_pandas`. ts as int ms.
    Returns (frame as `pandas_aggregate`'s, seconds for all of it)."""
    import pandas as pd
    import pathway as pw

    class Events(pw.io.python.ConnectorSubject):
        def run(self) -> None:
            for b in batches:
                cols = (
                    b.column("customer_id").to_pylist(),
                    b.column("ts").cast(pa.int64()).to_pylist(),
                    b.column("event_type").to_pylist(),
                    b.column("amount").to_pylist(),
                )
                for c, t, e, a in zip(*cols, strict=True):
                    self.next(customer_id=c, ts=t, event_type=e, amount=a)

    no_first, no_last = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    started = time.perf_counter()
    schema = pw.schema_from_types(
        customer_id=int if id_kind == "int" else str, ts=int, event_type=str, amount=float
    )
    # autocommit off: one commit when the subject ends, i.e. a single batch computation.
    events = pw.io.python.read(Events(), schema=schema, autocommit_duration_ms=None)
    is_p = pw.this.event_type == "purchase"
    is_r = pw.this.event_type == "refund"
    work = events.select(
        pw.this.customer_id,
        gross=pw.if_else(is_p, pw.this.amount, 0.0),
        refunded=pw.if_else(is_r, pw.this.amount, 0.0),
        orders=pw.if_else(is_p, 1, 0),
        refunds=pw.if_else(is_r, 1, 0),
        first=pw.if_else(is_p, pw.this.ts, no_first),
        last=pw.if_else(is_p, pw.this.ts, no_last),
    )
    res = work.groupby(pw.this.customer_id).reduce(
        pw.this.customer_id,
        ltv=pw.reducers.sum(pw.this.gross) - pw.reducers.sum(pw.this.refunded),
        orders=pw.reducers.sum(pw.this.orders),
        refunds=pw.reducers.sum(pw.this.refunds),
        first=pw.reducers.min(pw.this.first),
        last=pw.reducers.max(pw.this.last),
    )
    df = pw.debug.table_to_pandas(res, include_id=False)
    elapsed = time.perf_counter() - started

    def ts(col: Any, none: int) -> Any:
        return pd.to_datetime(col.where(col != none), unit="ms", utc=True).astype(
            "datetime64[ms, UTC]"
        )

    df["first_purchase_at"] = ts(df.pop("first"), no_first)
    df["last_purchase_at"] = ts(df.pop("last"), no_last)
    return df.set_index("customer_id"), elapsed


def check_agreement(engine: Any, res: Any) -> dict[str, Any]:
    """Compares the engine snapshot with a peer's result (pandas, indexed by customer_id, as
    `pandas_aggregate` returns it), customer by customer."""
    snap = (
        engine.snapshot()
        .select(
            ["customer_id", "ltv", "orders", "refunds", "first_purchase_at", "last_purchase_at"]
        )
        .to_pandas()
        .set_index("customer_id")
    )
    res = res.reindex(snap.index)
    ltv_engine = np.array([int(round(float(v) * 100)) for v in snap["ltv"]], dtype=np.int64)
    ltv_pandas = np.round(res["ltv"].to_numpy() * 100).astype(np.int64)

    def ms(col: Any) -> np.ndarray:
        return col.astype("datetime64[ms, UTC]").astype("int64").fillna(-1).to_numpy()

    checks = {
        "ltv": int((ltv_engine != ltv_pandas).sum()),
        "orders": int((snap["orders"].to_numpy() != res["orders"].to_numpy()).sum()),
        "refunds": int((snap["refunds"].to_numpy() != res["refunds"].to_numpy()).sum()),
        "first_purchase_at": int(
            (ms(snap["first_purchase_at"]) != ms(res["first_purchase_at"])).sum()
        ),
        "last_purchase_at": int(
            (ms(snap["last_purchase_at"]) != ms(res["last_purchase_at"])).sum()
        ),
    }
    return {"customers_compared": len(snap), "mismatches": checks}


def phase_ingest(args: argparse.Namespace, id_kind: str) -> dict[str, Any]:
    import segstream

    t = time.perf_counter()
    data = make_events(args.customers, args.events, args.batch_rows, id_kind)
    out: dict[str, Any] = {"generate_s": time.perf_counter() - t}
    batches = data["batches"]
    events = sum(b.num_rows for b in batches)
    out["events"] = events
    out["batches"] = len(batches)

    release_arrow_pool()
    rss0 = rss_bytes()
    engine = segstream.Engine(RULES)
    secs, changes, rejected = ingest_all(engine, batches)
    release_arrow_pool()
    rss1 = rss_bytes()
    out.update(
        ingest_s=secs,
        ingest_eps=events / secs,
        ingest_changes=changes,
        ingest_rejected=rejected,
        customers=engine.num_customers,
        pending_timers=engine.pending_timers,
        memory=engine.memory(),
        rss_before=rss0,
        rss_after=rss1,
        rss_per_customer=(rss1 - rss0) / engine.num_customers,
    )

    # (iv) evaluation rate: replace_rules re-evaluates every customer on every node.
    t = time.perf_counter()
    changes_tbl = engine.replace_rules(tweaked(RULES))
    secs = time.perf_counter() - t
    out.update(
        replace_s=secs,
        replace_changes=changes_tbl.num_rows,
        replace_evals_per_s=engine.num_customers * NODES / secs,
    )
    del changes_tbl

    # (ii) pandas / numpy on the same data, then agreement with the engine.
    res, total_s, groupby_s = pandas_aggregate(batches)
    out.update(pandas_total_s=total_s, pandas_groupby_s=groupby_s)
    out["agreement"] = check_agreement(engine, res)
    del res
    res, total_s, group_by_s = polars_aggregate(batches)
    import polars as pl

    out.update(
        polars_total_s=total_s, polars_group_by_s=group_by_s, polars_threads=pl.thread_pool_size()
    )
    out["polars_agreement"] = check_agreement(engine, res)
    del res
    if id_kind == "int":
        _, np_s = numpy_aggregate(data, args.customers)
        out["numpy_s"] = np_s
    del engine
    release_arrow_pool()

    agg_engine = segstream.Engine(AGG_ONLY_RULES)
    secs, _, _ = ingest_all(agg_engine, batches)
    out.update(aggonly_ingest_s=secs, aggonly_eps=events / secs)
    out["peak_rss"] = peak_rss_bytes()  # before Pathway, so (v) is as it was

    # (ii) Pathway, on a prefix of the events if --pathway-events is below --events; checked
    # against an aggregates-only engine over exactly those events.
    try:
        import pathway  # noqa: F401
    except ImportError:
        out["pathway_skipped"] = PATHWAY_SKIPPED
        return out
    pw_batches = prefix_batches(batches, args.pathway_events)
    pw_events = sum(b.num_rows for b in pw_batches)
    if pw_events < events:
        del agg_engine
        release_arrow_pool()
        agg_engine = segstream.Engine(AGG_ONLY_RULES)
        ingest_all(agg_engine, pw_batches)
    res, pw_s = pathway_aggregate(pw_batches, id_kind)
    out.update(
        pathway_events=pw_events,
        pathway_s=pw_s,
        pathway_threads=int(os.environ.get("PATHWAY_THREADS", "1")),
    )
    out["pathway_agreement"] = check_agreement(agg_engine, res)
    return out


def phase_advance(args: argparse.Namespace) -> dict[str, Any]:
    """N customers with one purchase each; 1% of them flip `lapsed` inside the timed window."""
    import segstream

    n = args.advance_customers
    rng = np.random.default_rng(SEED + 1)
    due = np.zeros(n, dtype=bool)
    due[rng.choice(n, size=n // 100, replace=False)] = True
    # Due customers bought on day 0; the others between day 100 and day 200.
    ts = np.where(
        due,
        T0 + rng.integers(0, DAY, n),
        T0 + 100 * DAY + rng.integers(0, 100 * DAY, n),
    ).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    ids = rng.permutation(n).astype(np.int64)[order]
    ts = ts[order]
    amount = np.round(rng.lognormal(np.log(40.0), 0.8, n), 2)
    cat_names = pa.array(CATEGORIES, pa.utf8())
    cat_idx = rng.integers(0, len(CATEGORIES), n, dtype=np.int32)
    batches = []
    for lo in range(0, n, args.batch_rows):
        hi = min(n, lo + args.batch_rows)
        cats = pa.ListArray.from_arrays(
            pa.array(np.arange(hi - lo + 1, dtype=np.int32)),
            cat_names.take(pa.array(cat_idx[lo:hi])),
        )
        batches.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array(ids[lo:hi], pa.int64()),
                    pa.array(ts[lo:hi], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                    pa.array(["purchase"] * (hi - lo), pa.utf8()),
                    pa.array(amount[lo:hi], pa.float64()),
                    cats,
                ],
                names=["customer_id", "ts", "event_type", "amount", "categories"],
            )
        )
    rules = copy.deepcopy(RULES)
    rules["allowed_lateness"] = "3650 days"
    out: dict[str, Any] = {"customers_requested": n, "due_by_construction": int(due.sum())}

    release_arrow_pool()
    rss0 = rss_bytes()
    engine = segstream.Engine(rules)
    secs, changes, rejected = ingest_all(engine, batches)
    release_arrow_pool()
    rss1 = rss_bytes()
    out.update(
        ingest_s=secs,
        ingest_eps=n / secs,
        ingest_changes=changes,
        ingest_rejected=rejected,
        customers=engine.num_customers,
        pending_timers=engine.pending_timers,
        memory=engine.memory(),
        rss_before=rss0,
        rss_after=rss1,
        rss_per_customer=(rss1 - rss0) / engine.num_customers,
    )
    del batches

    # Untimed: bring the clock to day 89, so that the due customers' earlier timers (30-day
    # windows) have run and the only thing left in (day 89, day 91] is the 90-day flip.
    t = time.perf_counter()
    pre = engine.advance_to(T0 + 89 * DAY)
    out.update(pre_advance_s=time.perf_counter() - t, pre_advance_changes=pre.num_rows)
    del pre

    t = time.perf_counter()
    changes_tbl = engine.advance_to(T0 + 91 * DAY)
    secs = time.perf_counter() - t
    segs = changes_tbl.column("segment").to_pylist()
    out.update(
        advance_s=secs,
        advance_changes=changes_tbl.num_rows,
        advance_customers_changed=len(set(changes_tbl.column("customer_id").to_pylist())),
        advance_segments=sorted(set(segs)),
    )
    del changes_tbl, segs

    # (iv) evaluation rate at this size: replace_rules, then advance_to with everyone due.
    t = time.perf_counter()
    changes_tbl = engine.replace_rules(tweaked(rules))
    secs = time.perf_counter() - t
    out.update(
        replace_s=secs,
        replace_changes=changes_tbl.num_rows,
        replace_evals_per_s=engine.num_customers * NODES / secs,
    )
    del changes_tbl
    timers_before = engine.pending_timers
    t = time.perf_counter()
    changes_tbl = engine.advance_to(T0 + 1000 * DAY)
    secs = time.perf_counter() - t
    out.update(
        all_due_timers=timers_before,
        all_due_s=secs,
        all_due_changes=changes_tbl.num_rows,
        all_due_timers_after=engine.pending_timers,
    )
    out["peak_rss"] = peak_rss_bytes()
    return out


# ---------------------------------------------------------------------------------------
# Driver and report
# ---------------------------------------------------------------------------------------


def run_phase(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--phase", name,
        "--customers", str(args.customers),
        "--events", str(args.events),
        "--advance-customers", str(args.advance_customers),
        "--batch-rows", str(args.batch_rows),
        "--pathway-events", str(args.pathway_events),
    ]  # fmt: skip
    print(f"[{name}] running ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"phase {name} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[{name}] done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return result


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:,.2f} M/s"


def mib(x: float) -> str:
    return f"{x / 2**20:,.0f} MiB"


def peer_rows(
    p: dict[str, Any],
    label: str,
    name: str,
    short: str,
    secs: float,
    note: str = "",
    events: int | None = None,
) -> list[tuple[str, str]]:
    """A peer's events/s over `events` (default: all of them) and its ratio to segstream."""
    eps = (p["events"] if events is None else events) / secs
    extra = f"; {note}" if note else ""
    return [
        (f"     {name}, {label}",
         f"{fmt_rate(eps)}  ({secs:.2f} s{extra})"),
        (f"     ratio segstream/{short} events/s, {label}",
         f"{p['ingest_eps'] / eps:.2f}x full rules, {p['aggonly_eps'] / eps:.2f}x aggregates-only"),
    ]  # fmt: skip


def report(args: argparse.Namespace, cmd: str, r: dict[str, dict[str, Any]]) -> None:
    rows: list[tuple[str, str]] = []
    for kind in ("int", "str"):
        p = r[f"ingest-{kind}"]
        label = "int64 ids" if kind == "int" else "string ids"
        rows += [
            (f"(i) segstream ingest, {label}, {NODES} nodes",
             f"{fmt_rate(p['ingest_eps'])}  ({p['events']:,} events in {p['ingest_s']:.2f} s, "
             f"{p['batches']} batches; {p['customers']:,} customers; {p['ingest_changes']:,} changes)"),  # noqa: E501
            (f"    segstream ingest, {label}, aggregates-only rule",
             f"{fmt_rate(p['aggonly_eps'])}  ({p['aggonly_ingest_s']:.2f} s)"),
            (f"(ii) pandas groupby, {label} (DataFrame in memory)",
             f"{fmt_rate(p['events'] / p['pandas_groupby_s'])}  ({p['pandas_groupby_s']:.2f} s)"),
            (f"     pandas incl. Arrow->pandas, {label}",
             f"{fmt_rate(p['events'] / p['pandas_total_s'])}  ({p['pandas_total_s']:.2f} s)"),
        ]  # fmt: skip
        if "numpy_s" in p:
            rows.append(
                (f"     NumPy bincount/ufunc.at, {label}",
                 f"{fmt_rate(p['events'] / p['numpy_s'])}  ({p['numpy_s']:.2f} s)")
            )  # fmt: skip
        rows += [
            (f"     ratio segstream/pandas-groupby events/s, {label}",
             f"{p['ingest_eps'] / (p['events'] / p['pandas_groupby_s']):.2f}x full rules, "
             f"{p['aggonly_eps'] / (p['events'] / p['pandas_groupby_s']):.2f}x aggregates-only"),
            (f"     ratio segstream/pandas-incl-conversion, {label}",
             f"{p['ingest_eps'] / (p['events'] / p['pandas_total_s']):.2f}x full rules, "
             f"{p['aggonly_eps'] / (p['events'] / p['pandas_total_s']):.2f}x aggregates-only"),
            (f"     engine vs pandas mismatches ({p['agreement']['customers_compared']:,} customers)",  # noqa: E501
             ", ".join(f"{k} {v}" for k, v in p["agreement"]["mismatches"].items())),
        ]  # fmt: skip
        rows += peer_rows(
            p, label, "Polars group_by", "polars-group_by", p["polars_group_by_s"],
            f"DataFrame in memory, {p['polars_threads']} threads",
        )  # fmt: skip
        rows += peer_rows(
            p, label, "Polars incl. Arrow->Polars", "polars-incl-conversion",
            p["polars_total_s"],
        )  # fmt: skip
        a = p["polars_agreement"]
        rows.append(
            (f"     engine vs Polars mismatches ({a['customers_compared']:,} customers)",
             ", ".join(f"{k} {v}" for k, v in a["mismatches"].items()))
        )  # fmt: skip
        if "pathway_skipped" in p:
            rows.append((f"     Pathway groupby().reduce(), {label}", p["pathway_skipped"]))
        else:
            n = p["pathway_events"]
            scope = "all events" if n == p["events"] else f"first {n:,} events only"
            rows += peer_rows(
                p, label, "Pathway groupby().reduce()", "pathway", p["pathway_s"],
                f"pw.io.python input, PATHWAY_THREADS={p['pathway_threads']}, {scope}", events=n,
            )  # fmt: skip
            a = p["pathway_agreement"]
            rows.append(
                (f"     engine vs Pathway mismatches ({a['customers_compared']:,} customers, {scope})",  # noqa: E501
                 ", ".join(f"{k} {v}" for k, v in a["mismatches"].items()))
            )  # fmt: skip
    a = r["advance"]
    rows += [
        (f"(iii) advance_to, {a['customers']:,} customers, 1% due",
         f"{a['advance_s'] * 1000:,.1f} ms  ({a['due_by_construction']:,} due by construction; "
         f"{a['advance_customers_changed']:,} customers changed, {a['advance_changes']:,} changes, "
         f"segments {a['advance_segments']})"),
        ("      (setup: ingest one purchase each)",
         f"{fmt_rate(a['ingest_eps'])}  ({a['ingest_s']:.2f} s); untimed pre-advance to day 89: "
         f"{a['pre_advance_s'] * 1000:,.0f} ms, {a['pre_advance_changes']:,} changes"),
    ]  # fmt: skip
    for key, label in (("ingest-int", "1M-style engine (int ids)"), ("advance", "advance engine")):
        p = r[key]
        rows.append(
            (f"(iv) replace_rules eval rate, {label}",
             f"{fmt_rate(p['replace_evals_per_s'])} customer x node  ({p['customers']:,} x {NODES} "
             f"in {p['replace_s']:.2f} s, {p['replace_changes']:,} changes; includes state rekey)")
        )  # fmt: skip
    rows.append(
        ("     advance_to with everyone due",
         f"{a['all_due_s']:.2f} s for {a['all_due_timers']:,} customers with timers = "
         f"{a['all_due_timers'] / a['all_due_s'] / 1e6:,.2f} M customers/s "
         f"(x {NODES} nodes = {fmt_rate(a['all_due_timers'] * NODES / a['all_due_s'])}); "
         f"{a['all_due_changes']:,} changes, {a['all_due_timers_after']:,} timers left")
    )  # fmt: skip
    for key, label in (
        ("ingest-int", "int ids, ~20 events/customer"),
        ("ingest-str", "string ids, ~20 events/customer"),
        ("advance", "int ids, 1 purchase/customer"),
    ):
        p = r[key]
        m = p["memory"]
        c = p["customers"]
        rows.append(
            (f"(v) state bytes/customer, {label}",
             f"memory(): base {m['base_bytes_per_customer']} + ids {m['ids'] / c:.1f} + keyed "
             f"{m['keyed'] / c:.1f} = {m['base_bytes_per_customer'] + (m['ids'] + m['keyed']) / c:.1f} B; "  # noqa: E501
             f"RSS growth {p['rss_per_customer']:.1f} B ({mib(p['rss_after'] - p['rss_before'])} "
             f"for {c:,}); peak RSS {mib(p['peak_rss'])}")
        )  # fmt: skip

    width = max(len(k) for k, _ in rows)
    print()
    print(f"segstream engine throughput ({os.cpu_count()} CPUs visible; "
          f"{args.events:,} events over {args.customers:,} customer ids, batches of "
          f"{args.batch_rows:,} rows)")  # fmt: skip
    print(f"command: {cmd}")
    print("-" * (width + 60))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print("-" * (width + 60))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--advance-customers", type=int, default=10_000_000)
    ap.add_argument("--batch-rows", type=int, default=1_000_000)
    ap.add_argument(
        "--pathway-events",
        type=int,
        default=2_000_000,
        help="run Pathway on the first N events only (it is much slower than the others)",
    )
    ap.add_argument(
        "--small", action="store_true", help="50k customers, 1M events, 200k for advance_to"
    )
    ap.add_argument("--json", help="also write the raw figures to this file")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.small:
        args.customers, args.events, args.advance_customers = 50_000, 1_000_000, 200_000
        args.batch_rows = min(args.batch_rows, 100_000)

    if args.phase:
        if args.phase == "ingest-int":
            res = phase_ingest(args, "int")
        elif args.phase == "ingest-str":
            res = phase_ingest(args, "str")
        elif args.phase == "advance":
            res = phase_advance(args)
        else:
            raise SystemExit(f"unknown phase {args.phase}")
        print(json.dumps(res))
        return

    cmd = " ".join([os.path.relpath(sys.executable), os.path.relpath(__file__), *sys.argv[1:]])
    results = {name: run_phase(name, args) for name in ("ingest-int", "ingest-str", "advance")}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    report(args, cmd, results)


if __name__ == "__main__":
    main()
