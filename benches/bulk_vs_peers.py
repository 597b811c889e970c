"""Bulk re-segmentation against DuckDB and Polars: same Parquet in, same memberships out.

One run generates (or reuses) a seeded purchase history as Parquet, then, each in its own
subprocess so that peak memory (ru_maxrss) is measured per tool:

- segstream: `segstream.bulk.resegment` with benches/rules/bulk.yaml as of a fixed date;
- DuckDB: one SQL query (GROUP BY customer, CASE per segment), 2 threads;
- Polars: the same as lazy expressions, 2 threads;
- the engine hot path alone: in-memory batches through `Engine.ingest` (no Parquet).

All three write memberships.parquet; the script then checks they agree customer by
customer and fails loudly if not, and prints wall time, rows/s, peak memory and ratios.

    python benches/bulk_vs_peers.py --small           # a quick try (~1M events)
    python benches/bulk_vs_peers.py                   # 20M orders, 1M customers
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules" / "bulk.yaml"
AS_OF = datetime(2024, 12, 1, tzinfo=UTC)
THREADS = 2
TOOLS = ("segstream", "duckdb", "polars")
# Share of purchases among the generated events (segstream.generate draws 15% purchases).
PURCHASE_SHARE = 0.15

# ---------------------------------------------------------------------------------------
# The rule set of benches/rules/bulk.yaml in SQL. Per-customer columns first (the state
# the engine keeps), then one expression per segment over them. Money is in minor units.
# ---------------------------------------------------------------------------------------

_P = "event_type = 'purchase'"
_R = "event_type = 'refund'"


def _within(days: int) -> str:
    return f"ts >= TIMESTAMPTZ '{(AS_OF - timedelta(days=days)).isoformat()}'"


def _ago(days: int) -> str:
    return f"TIMESTAMPTZ '{(AS_OF - timedelta(days=days)).isoformat()}'"


def _ever(category: str) -> str:
    """has_category(): bought at least once (page views name categories too; they do not count)."""
    return f"coalesce(bool_or(list_contains(categories, '{category}')) FILTER (WHERE {_P}), false)"


SQL_STATE = {
    "gross": f"coalesce(sum(minor) FILTER (WHERE {_P}), 0)",
    "refunded": f"coalesce(sum(minor) FILTER (WHERE {_R}), 0)",
    "orders": f"count(*) FILTER (WHERE {_P})",
    "refunds": f"count(*) FILTER (WHERE {_R})",
    "first_purchase_at": f"min(ts) FILTER (WHERE {_P})",
    "last_purchase_at": f"max(ts) FILTER (WHERE {_P})",
    "has_kitchen": _ever("kitchen"),
    "has_tableware": _ever("tableware"),
    "has_grocery": _ever("grocery"),
    "has_cookware": _ever("cookware"),
    "last_kitchen_at": f"max(ts) FILTER (WHERE {_P} AND list_contains(categories, 'kitchen'))",
    "coffee_all": f"count(*) FILTER (WHERE {_P} AND list_contains(product_ids, 'p0001'))",
    "coffee_60": (
        f"count(*) FILTER (WHERE {_P} AND list_contains(product_ids, 'p0001') AND {_within(60)})"
    ),
    "coffee_45": (
        f"count(*) FILTER (WHERE {_P} AND list_contains(product_ids, 'p0001') AND {_within(45)})"
    ),
    "subs_35": (
        f"count(*) FILTER (WHERE {_P} AND list_contains(categories, 'subscriptions') "
        f"AND {_within(35)})"
    ),
    "spend_30": (
        f"coalesce(sum(CASE WHEN {_P} THEN minor WHEN {_R} THEN -minor END) "
        f"FILTER (WHERE {_within(30)}), 0)"
    ),
    "purchases_30": f"count(*) FILTER (WHERE {_P} AND {_within(30)})",
    "views_30": f"count(*) FILTER (WHERE event_type = 'page_view' AND {_within(30)})",
    "carts_7": f"count(*) FILTER (WHERE event_type = 'cart_abandon' AND {_within(7)})",
    "gifts": f"count(*) FILTER (WHERE {_P} AND list_contains(flags, 'gift'))",
    "offers_7": f"count(*) FILTER (WHERE event_type = 'offer_sent' AND {_within(7)})",
    "support_30": f"count(*) FILTER (WHERE event_type = 'support_case' AND {_within(30)})",
}

_LTV = "(gross - refunded)"
SQL_SEGMENTS = {
    "vip_gold": f"{_LTV} >= 100000",
    "vip_silver": f"{_LTV} >= 25000 AND {_LTV} < 100000",
    "lapsed_vip": f"{_LTV} >= 100000 AND last_purchase_at < {_ago(60)}",
    "dormant": f"orders >= 2 AND last_purchase_at < {_ago(90)}",
    "one_and_done": f"orders = 1 AND first_purchase_at < {_ago(180)}",
    "cross_sell_tableware": (
        f"has_kitchen AND NOT has_tableware AND last_kitchen_at <= {_ago(30)}"
    ),
    "cross_sell_cookware": "has_grocery AND NOT has_cookware AND orders >= 3",
    "coffee_regular": "coffee_60 >= 2",
    "coffee_due": "coffee_all >= 2 AND coffee_45 = 0",
    "subscriber_active": "subs_35 >= 1",
    "recent_big_spender": "spend_30 >= 30000",
    "browsers": "views_30 >= 10 AND purchases_30 = 0",
    "cart_abandoners": (
        f"carts_7 >= 1 AND coalesce(last_purchase_at, TIMESTAMPTZ '1970-01-01 00:00:00+00') "
        f"< {_ago(7)}"
    ),
    "gift_buyers": "gifts >= 2",
    "suppress_refunders": "refunds >= 2 OR (refunds >= 1 AND refunded * 2 >= gross)",
    "suppress_contacted": "offers_7 >= 1 OR support_30 >= 1",
}
SQL_LIFECYCLES = {
    "vip_tier": (
        f"CASE WHEN {_LTV} >= 100000 THEN 'gold' WHEN {_LTV} >= 25000 THEN 'silver' "
        f"WHEN {_LTV} >= 10000 THEN 'bronze' WHEN orders >= 1 THEN 'regular' END"
    ),
}


def duckdb_query(path: str) -> str:
    state = ",\n    ".join(f"{expr} AS {name}" for name, expr in SQL_STATE.items())
    segments = ",\n  ".join(f"coalesce({expr}, false) AS {n}" for n, expr in SQL_SEGMENTS.items())
    stages = ",\n  ".join(f"{expr} AS {n}" for n, expr in SQL_LIFECYCLES.items())
    return f"""
WITH e AS (
  SELECT customer_id, ts, event_type, CAST(round(amount * 100) AS BIGINT) AS minor,
         product_ids, categories, flags
  FROM read_parquet('{path}')
  WHERE ts <= TIMESTAMPTZ '{AS_OF.isoformat()}'
), c AS (
  SELECT customer_id,
    {state}
  FROM e GROUP BY customer_id
)
SELECT customer_id,
  {segments},
  {stages}
FROM c
"""


# ---------------------------------------------------------------------------------------
# The same in Polars lazy expressions.
# ---------------------------------------------------------------------------------------


def polars_plan(path: str) -> Any:
    import polars as pl

    ts, kind = pl.col("ts"), pl.col("event_type")
    purchase, refund = kind == "purchase", kind == "refund"
    minor = pl.col("minor")

    def within(days: int) -> pl.Expr:
        return ts >= AS_OF - timedelta(days=days)

    def cat(name: str) -> pl.Expr:
        return pl.col("categories").list.contains(name).fill_null(False)

    def product(name: str) -> pl.Expr:
        return pl.col("product_ids").list.contains(name).fill_null(False)

    def count(cond: pl.Expr) -> pl.Expr:
        return cond.sum()

    net = pl.when(purchase).then(minor).when(refund).then(-minor).otherwise(0)

    state = [
        minor.filter(purchase).sum().alias("gross"),
        minor.filter(refund).sum().alias("refunded"),
        count(purchase).alias("orders"),
        count(refund).alias("refunds"),
        ts.filter(purchase).min().alias("first_purchase_at"),
        ts.filter(purchase).max().alias("last_purchase_at"),
        (purchase & cat("kitchen")).any().alias("has_kitchen"),
        (purchase & cat("tableware")).any().alias("has_tableware"),
        (purchase & cat("grocery")).any().alias("has_grocery"),
        (purchase & cat("cookware")).any().alias("has_cookware"),
        ts.filter(purchase & cat("kitchen")).max().alias("last_kitchen_at"),
        count(purchase & product("p0001")).alias("coffee_all"),
        count(purchase & product("p0001") & within(60)).alias("coffee_60"),
        count(purchase & product("p0001") & within(45)).alias("coffee_45"),
        count(purchase & cat("subscriptions") & within(35)).alias("subs_35"),
        net.filter(within(30)).sum().alias("spend_30"),
        count(purchase & within(30)).alias("purchases_30"),
        count((kind == "page_view") & within(30)).alias("views_30"),
        count((kind == "cart_abandon") & within(7)).alias("carts_7"),
        count(purchase & pl.col("flags").list.contains("gift").fill_null(False)).alias("gifts"),
        count((kind == "offer_sent") & within(7)).alias("offers_7"),
        count((kind == "support_case") & within(30)).alias("support_30"),
    ]
    c = {name: pl.col(name) for name in SQL_STATE}
    ltv = c["gross"] - c["refunded"]
    last = c["last_purchase_at"]

    def ago(days: int) -> datetime:
        return AS_OF - timedelta(days=days)

    segments = {
        "vip_gold": ltv >= 100_000,
        "vip_silver": (ltv >= 25_000) & (ltv < 100_000),
        "lapsed_vip": (ltv >= 100_000) & (last < ago(60)),
        "dormant": (c["orders"] >= 2) & (last < ago(90)),
        "one_and_done": (c["orders"] == 1) & (c["first_purchase_at"] < ago(180)),
        "cross_sell_tableware": c["has_kitchen"]
        & ~c["has_tableware"]
        & (c["last_kitchen_at"] <= ago(30)),
        "cross_sell_cookware": c["has_grocery"] & ~c["has_cookware"] & (c["orders"] >= 3),
        "coffee_regular": c["coffee_60"] >= 2,
        "coffee_due": (c["coffee_all"] >= 2) & (c["coffee_45"] == 0),
        "subscriber_active": c["subs_35"] >= 1,
        "recent_big_spender": c["spend_30"] >= 30_000,
        "browsers": (c["views_30"] >= 10) & (c["purchases_30"] == 0),
        "cart_abandoners": (c["carts_7"] >= 1)
        & (last.fill_null(datetime(1970, 1, 1, tzinfo=UTC)) < ago(7)),
        "gift_buyers": c["gifts"] >= 2,
        "suppress_refunders": (c["refunds"] >= 2)
        | ((c["refunds"] >= 1) & (c["refunded"] * 2 >= c["gross"])),
        "suppress_contacted": (c["offers_7"] >= 1) | (c["support_30"] >= 1),
    }
    tier = (
        pl.when(ltv >= 100_000).then(pl.lit("gold"))
        .when(ltv >= 25_000).then(pl.lit("silver"))
        .when(ltv >= 10_000).then(pl.lit("bronze"))
        .when(c["orders"] >= 1).then(pl.lit("regular"))
        .otherwise(pl.lit(None, pl.String))
    )  # fmt: skip
    return (
        pl.scan_parquet(path)
        .filter(ts <= AS_OF)
        .with_columns((pl.col("amount") * 100).round().cast(pl.Int64).alias("minor"))
        .group_by("customer_id")
        .agg(state)
        .select(
            "customer_id",
            *[expr.fill_null(False).alias(name) for name, expr in segments.items()],
            tier.alias("vip_tier"),
        )
    )


# ---------------------------------------------------------------------------------------
# Workers: each runs in its own process and prints one JSON line.
# ---------------------------------------------------------------------------------------


def work_segstream(data: str, out: Path) -> dict[str, Any]:
    from segstream.bulk import resegment, write_table

    started = time.perf_counter()
    result = resegment(str(RULES), data, as_of=AS_OF)
    write_table(result.memberships, out / "memberships.parquet", "parquet")
    return {
        "seconds": time.perf_counter() - started,
        "rows": result.rows_read,
        "rows_skipped": result.rows_skipped,
        "rows_rejected": result.rows_rejected,
        "customers": result.customers,
    }


def work_duckdb(data: str, out: Path) -> dict[str, Any]:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    con.execute("SET TimeZone = 'UTC'")
    target = out / "memberships.parquet"
    con.execute(f"COPY ({duckdb_query(data)}) TO '{target}' (FORMAT parquet)")
    seconds = time.perf_counter() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{data}')").fetchone()
    return {"seconds": seconds, "rows": rows[0] if rows else 0}


def work_polars(data: str, out: Path) -> dict[str, Any]:
    import polars as pl

    started = time.perf_counter()
    # The streaming engine: what a Polars user runs on data larger than memory.
    polars_plan(data).collect(engine="streaming").write_parquet(out / "memberships.parquet")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": pl.scan_parquet(data).select(pl.len()).collect().item()}


def work_engine(data: str, out: Path, hot_rows: int) -> dict[str, Any]:
    """The engine alone: batches already in memory, cut at AS_OF, no file reading or writing."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import segstream

    engine = segstream.Engine(str(RULES))
    # The columns and calls of the bulk path: what the rules read, the clock at AS_OF from
    # the start, evaluation deferred to the end.
    columns = [*engine.rule_columns, "order_id"]
    batches, rows = [], 0
    for batch in pq.ParquetFile(data).iter_batches(batch_size=1 << 18, columns=columns):
        batch = batch.filter(pc.less_equal(batch["ts"], AS_OF))
        batches.append(batch)
        rows += batch.num_rows
        if rows >= hot_rows:
            break
    engine.advance_to(AS_OF)
    started = time.perf_counter()
    for batch in batches:
        engine.ingest(batch, evaluate=False)
    ingested = time.perf_counter()
    engine.advance_to(AS_OF, net=True)
    advanced = time.perf_counter()
    snapshot = engine.snapshot()
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "ingest_seconds": ingested - started,
        "advance_seconds": advanced - ingested,
        "snapshot_seconds": done - advanced,
        "rows": rows,
        "customers": snapshot.num_rows,
    }


def worker(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.worker == "engine":
        report = work_engine(args.data, out, args.hot_rows)
    else:
        report = {"segstream": work_segstream, "duckdb": work_duckdb, "polars": work_polars}[
            args.worker
        ](args.data, out)
    print(json.dumps(report))
    return 0


# ---------------------------------------------------------------------------------------
# The driver.
# ---------------------------------------------------------------------------------------


def dataset(cache: Path, customers: int, events: int, seed: int) -> Path:
    """The seeded history as Parquet, generated once per size and seed."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"events-{customers}c-{events}e-s{seed}.parquet"
    if path.exists():
        print(f"reusing {path}", file=sys.stderr)
        return path
    print(f"generating {events:,} events of {customers:,} customers into {path}", file=sys.stderr)
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    # In a child process: ru_maxrss survives exec, so a parent grown by generating would
    # inflate the peak memory measured for every tool run after it.
    code = (
        "import sys; from segstream import generate; a = sys.argv; "
        "generate.write_parquet(a[1], int(a[2]), int(a[3]), seed=int(a[4]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(partial), str(customers), str(events), str(seed)],
        check=True,
    )
    partial.rename(path)
    print(f"  {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def run_worker(name: str, data: Path, out: Path, hot_rows: int) -> dict[str, Any]:
    """Run one tool in a child process; its own report plus wall time and peak RSS."""
    env = dict(os.environ, POLARS_MAX_THREADS=str(THREADS))
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(data), "--out", str(out)]
    cmd += ["--hot-rows", str(hot_rows)]
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over all).
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {child.returncode}")
    report: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    report["wall"] = wall
    report["peak_mib"] = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    return report


def compare(outputs: dict[str, Path]) -> None:
    """Fail loudly unless every tool put every customer in the same segments and stages."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = [*SQL_SEGMENTS, *SQL_LIFECYCLES]
    tables = {}
    for tool, path in outputs.items():
        table = pq.read_table(path)
        missing = sorted(set(names) - set(table.column_names))
        if missing:
            raise SystemExit(f"MISMATCH: {tool} has no column {', '.join(missing)}")
        columns = [pc.cast(table["customer_id"], pa.string())]
        for name in names:
            kind = pa.bool_() if name in SQL_SEGMENTS else pa.string()
            columns.append(pc.cast(table[name], kind))
        table = pa.table(columns, names=["customer_id", *names])
        tables[tool] = table.sort_by("customer_id")
    reference_tool, reference = next(iter(tables.items()))
    failures = []
    for tool, table in tables.items():
        if tool == reference_tool:
            continue
        if not table["customer_id"].equals(reference["customer_id"]):
            only = set(reference["customer_id"].to_pylist()) ^ set(table["customer_id"].to_pylist())
            failures.append(
                f"{tool} vs {reference_tool}: {table.num_rows:,} vs {reference.num_rows:,} "
                f"customers; e.g. listed by one only: {sorted(only)[:5]}"
            )
            continue
        left, right = reference, table
        for name in names:
            a, b = left[name], right[name]
            same = pc.fill_null(pc.equal(a, b), False)
            same = pc.or_(same, pc.and_(pc.is_null(a), pc.is_null(b)))
            bad = pc.invert(same)
            count = pc.sum(bad).as_py() or 0
            if count:
                ids = left["customer_id"].filter(bad).to_pylist()[:5]
                lv, rv = a.filter(bad).to_pylist()[:5], b.filter(bad).to_pylist()[:5]
                failures.append(
                    f"{name}: {count:,} customers differ ({reference_tool} vs {tool}), "
                    f"e.g. {list(zip(ids, lv, rv, strict=True))}"
                )
    if failures:
        raise SystemExit("MISMATCH\n  " + "\n  ".join(failures))
    counts = {n: pc.sum(reference[n]).as_py() for n in SQL_SEGMENTS}
    print(
        f"all {len(tables)} tools agree on {reference.num_rows:,} customers x {len(names)} "
        f"segments and lifecycles; members: {counts}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000_000, help="purchase events")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--events", type=int, help="all events (default: orders / 0.15, the generator's mix)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--small", action="store_true", help="150k orders, 20k customers")
    parser.add_argument(
        "--hot-rows", type=int, default=10_000_000, help="rows held in memory for the hot path"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "segstream-bench",
        help="where the generated Parquet is kept between runs",
    )
    parser.add_argument("--tools", default=",".join([*TOOLS, "engine"]), help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=[*TOOLS, "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    if args.small:
        args.orders, args.customers = 150_000, 20_000
    events = args.events or round(args.orders / PURCHASE_SHARE)
    data = dataset(args.cache, args.customers, events, args.seed)
    size_mib = data.stat().st_size / 2**20
    print(
        f"{events:,} events ({args.orders:,} orders target) of {args.customers:,} customers, "
        f"{size_mib:,.0f} MiB Parquet; as of {AS_OF:%Y-%m-%d}; {THREADS} threads for the peers; "
        f"rules {RULES.relative_to(HERE.parent)}"
    )
    tools = args.tools.split(",")
    reports: dict[str, dict[str, Any]] = {}
    outputs: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="segstream-bulk-") as tmp:
        for tool in tools:
            out = Path(tmp) / tool
            reports[tool] = run_worker(tool, data, out, args.hot_rows)
            if tool in TOOLS:
                outputs[tool] = out / "memberships.parquet"
            print(f"  {tool:<10} done in {reports[tool]['seconds']:.2f} s", file=sys.stderr)
        if len(outputs) > 1:
            compare(outputs)

    header = f"{'tool':<22}{'time s':>9}{'wall s':>9}{'rows/s':>14}{'peak MiB':>10}"
    print(f"\n{header}{'x segstream':>13}")
    base = reports.get("segstream", {}).get("seconds")
    for tool, r in reports.items():
        label = "engine hot path" if tool == "engine" else tool
        ratio = f"{r['seconds'] / base:.2f}" if base and tool != "engine" else "-"
        print(
            f"{label:<22}{r['seconds']:>9.2f}{r['wall']:>9.2f}{r['rows'] / r['seconds']:>14,.0f}"
            f"{r['peak_mib']:>10,.0f}{ratio:>13}"
        )
    if "engine" in reports:
        e = reports["engine"]
        print(
            f"\nengine hot path over {e['rows']:,} in-memory rows: "
            f"ingest {e['ingest_seconds']:.2f} s, advance_to {e['advance_seconds']:.2f} s, "
            f"snapshot {e['snapshot_seconds']:.2f} s"
        )
    if base:
        for peer in ("duckdb", "polars"):
            if peer in reports:
                ratio = reports[peer]["seconds"] / base
                if ratio >= 1:
                    print(f"segstream is {ratio:.2f}x as fast as {peer}")
                else:
                    print(f"segstream is {1 / ratio:.2f}x slower than {peer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
