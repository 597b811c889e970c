"""`segstream segment` / `segstream check` end to end, run as a subprocess on generated files.

The reference for every membership is `Engine.ingest` over the same events in memory,
and once DuckDB SQL over the same Parquet file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import segstream
from segstream import generate

AS_OF = datetime(2024, 10, 1, tzinfo=UTC)

RULES = """\
currency_scale: 2
segments:
  - name: big_spender
    rule: ltv >= 300
  - name: dormant
    rule: orders >= 2 AND last_purchase_at < now() - INTERVAL '60 days'
  - name: kitchen_no_tableware
    rule: has_category('kitchen') AND NOT has_category('tableware')
  - name: coffee_regular
    rule: purchases(product => 'p0001', within => INTERVAL '90 days') >= 2
  - name: browsers
    rule: events('page_view', within => INTERVAL '30 days') >= 3 AND orders <= 1
  - name: refunders
    rule: refunds >= 1
  - name: many_items
    rule: items >= 10
lifecycles:
  - name: tier
    stages:
      - {name: gold, rule: ltv >= 1000}
      - {name: silver, rule: ltv >= 200}
      - {name: regular, rule: orders >= 1}
"""
NAMES = [
    "big_spender",
    "dormant",
    "kitchen_no_tableware",
    "coffee_regular",
    "browsers",
    "refunders",
    "many_items",
    "tier",
]
_LISTS = ("product_ids", "categories", "flags")


# -- helpers ---------------------------------------------------------------------------


def run_cli(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segstream.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(*args: Any) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def cut(events: pa.Table, as_of: datetime | None) -> pa.Table:
    return events if as_of is None else events.filter(pc.less_equal(events["ts"], as_of))


def engine_memberships(rules: Path, events: pa.Table, as_of: datetime) -> pa.Table:
    """The reference: the same events through Engine.ingest in memory, then advance_to."""
    engine = segstream.Engine(str(rules))
    for batch in cut(events, as_of).to_batches(max_chunksize=997):
        assert engine.ingest(batch).rejected.num_rows == 0
    engine.advance_to(as_of)
    return normalized(engine.snapshot().select(["customer_id", *NAMES]))


def normalized(table: pa.Table) -> pa.Table:
    """Memberships sorted by customer, stages as plain strings, for equality checks."""
    columns = [table[n] for n in ["customer_id", *NAMES]]
    for i, column in enumerate(columns):
        if pa.types.is_dictionary(column.type):
            columns[i] = pc.cast(column, column.type.value_type)
        if pa.types.is_large_string(columns[i].type):
            columns[i] = pc.cast(columns[i], pa.string())
    return pa.table(columns, names=["customer_id", *NAMES]).sort_by("customer_id").combine_chunks()


def read_out(out: Path, name: str = "memberships") -> pa.Table:
    return pq.read_table(out / f"{name}.parquet")


def summary(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return result


def flat(events: pa.Table) -> pa.Table:
    """Lists reduced to their first value: the shape of CSV exports (one value per cell)."""
    for name in _LISTS:
        column = events[name]
        first = pc.list_element(
            pc.if_else(
                pc.greater(pc.list_value_length(column), 0), column, pa.scalar(None, column.type)
            ),
            0,
        )
        events = events.set_column(events.schema.get_field_index(name), name, first)
    return events


def write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=1000)
    elif path.suffix == ".arrow":
        feather.write_feather(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    elif path.suffix == ".jsonl":
        with path.open("w") as handle:
            for row in table.to_pylist():
                row["ts"] = row["ts"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
                handle.write(json.dumps(row) + "\n")
    else:
        raise AssertionError(path)
    return path


def order_lines(events: pa.Table) -> pa.Table:
    """Each order (and refund) as one row per product, amounts and quantities split exactly."""
    rows = []
    for row in events.to_pylist():
        products = row["product_ids"] or [None]
        if row["order_id"] is None or len(products) == 1:
            rows.append(row | {k: (row[k] or [None])[0] for k in _LISTS})
            continue
        n = len(products)
        cats = row["categories"] or [None]
        cents = round(row["amount"] * 100)
        for i, product in enumerate(products):
            share = cents // n + (cents % n if i == 0 else 0)
            quantity = None
            if row["quantity"] is not None:
                quantity = row["quantity"] - (n - 1) if i == 0 else 1
            rows.append(
                row
                | {
                    "product_ids": product,
                    "categories": cats[i] if i < len(cats) else cats[0],
                    "flags": (row["flags"] or [None])[0],
                    "amount": share / 100,
                    "quantity": quantity,
                    "event_id": f"{row['event_id']}-{i}",
                }
            )
    schema = pa.schema(
        [f if f.name not in _LISTS else pa.field(f.name, pa.string()) for f in events.schema]
    )
    return pa.Table.from_pylist(rows, schema=schema)


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events() -> pa.Table:
    batches = list(generate.purchase_events(300, 8_000, seed=11, batch_size=4_096))
    return pa.Table.from_batches(batches)


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES)
    return path


# -- every input format gives the engine's memberships ---------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".csv", ".jsonl"])
def test_each_format_matches_engine_ingest(
    events: pa.Table, rules: Path, tmp_path: Path, suffix: str
) -> None:
    data = flat(events)
    path = write(data, tmp_path / f"events{suffix}")
    out = tmp_path / "out"
    ok("segment", rules, path, "--as-of", AS_OF.date(), "--out", out)
    assert normalized(read_out(out)).equals(engine_memberships(rules, data, AS_OF))
    counts = summary(out)
    assert counts["rows_read"] == data.num_rows
    assert counts["rows_rejected"] == 0


def test_json_lines_whose_first_block_has_no_orders(rules: Path, tmp_path: Path) -> None:
    # Signals first, null keys left out (as JSON writers do): `amount`, `order_id` and
    # friends first appear past the reader's first block, with lists and millisecond times.
    events = pa.Table.from_batches(list(generate.purchase_events(300, 20_000, seed=5)))
    signal_first = pc.sort_indices(pc.is_in(events["event_type"], pa.array(["purchase", "refund"])))
    events = events.take(signal_first)
    path = tmp_path / "events.jsonl"
    with path.open("w") as handle:
        for row in events.to_pylist():
            row["ts"] = row["ts"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
            handle.write(json.dumps({k: v for k, v in row.items() if v not in (None, [])}) + "\n")
    assert path.stat().st_size > 2 << 20
    out = tmp_path / "out"
    ok("segment", rules, path, "--as-of", AS_OF.date(), "--out", out)
    assert summary(out)["rows_rejected"] == 0
    assert normalized(read_out(out)).equals(engine_memberships(rules, events, AS_OF))


def test_list_columns_from_parquet_match_engine_ingest(
    events: pa.Table, rules: Path, tmp_path: Path
) -> None:
    path = write(events, tmp_path / "events.parquet")
    out = tmp_path / "out"
    done = ok("segment", rules, path, "--as-of", AS_OF.date(), "--out", out)
    expected = engine_memberships(rules, events, AS_OF)
    assert normalized(read_out(out)).equals(expected)
    # The report shows each segment's size as the engine counts it.
    gold = pc.sum(pc.equal(expected["tier"], "gold")).as_py()
    assert "tier: gold" in done.stdout and f"{gold:,}" in done.stdout
    profiles = read_out(out, "profiles")
    assert "ltv" in profiles.column_names and "big_spender" not in profiles.column_names
    assert profiles.num_rows == expected.num_rows


def test_directories_and_globs_read_every_file(
    events: pa.Table, rules: Path, tmp_path: Path
) -> None:
    parts = tmp_path / "parts"
    (parts / "nested").mkdir(parents=True)
    third = events.num_rows // 3
    write(events.slice(0, third), parts / "a.parquet")
    write(events.slice(third, third), parts / "nested" / "b.parquet")
    write(events.slice(2 * third), parts / "c.parquet")
    (parts / "_SUCCESS").write_text("")  # marker files of Spark jobs are skipped
    expected = engine_memberships(rules, events, AS_OF)
    for inputs in ([parts], [str(parts / "*.parquet"), str(parts / "nested" / "*.parquet")]):
        out = tmp_path / f"out{len(inputs)}"
        ok("segment", rules, *inputs, "--as-of", AS_OF.date(), "--out", out)
        assert normalized(read_out(out)).equals(expected)
        assert summary(out)["rows_read"] == events.num_rows


def test_map_renames_the_users_columns(events: pa.Table, rules: Path, tmp_path: Path) -> None:
    data = flat(events)
    renamed = data.rename_columns(
        [
            {"customer_id": "cust_no", "ts": "order_date", "amount": "total"}.get(n, n)
            for n in data.column_names
        ]
    )
    path = write(renamed, tmp_path / "orders.csv")
    out = tmp_path / "out"
    ok(
        "segment", rules, path, "--as-of", AS_OF.date(), "--out", out,
        "--map", "customer_id=cust_no,ts=order_date,amount=total",
    )  # fmt: skip
    assert normalized(read_out(out)).equals(engine_memberships(rules, data, AS_OF))


def test_map_errors(events: pa.Table, rules: Path, tmp_path: Path) -> None:
    path = write(flat(events).slice(0, 100), tmp_path / "events.csv")
    # Reversed pairs are a usage error.
    reversed_pair = run_cli("segment", rules, path, "--map", "cust_no=customer_id")
    assert reversed_pair.returncode == 2
    assert "cust_no" in reversed_pair.stderr and "ENGINE_NAME=YOUR_NAME" in reversed_pair.stderr
    # A mapped column the file lacks is named, with the file.
    missing = run_cli("segment", rules, path, "--map", "customer_id=cust_no", "--out", tmp_path)
    assert missing.returncode == 1
    assert "cust_no" in missing.stderr and str(path) in missing.stderr
    # So is a required column that is neither there nor mapped.
    renamed = write(
        flat(events).slice(0, 100).rename_columns(["cust_no", *flat(events).column_names[1:]]),
        tmp_path / "renamed.csv",
    )
    unmapped = run_cli("segment", rules, renamed, "--out", tmp_path)
    assert unmapped.returncode == 1
    assert "customer_id" in unmapped.stderr and "--map" in unmapped.stderr


def test_as_of_skips_later_events_and_sets_the_clock(
    events: pa.Table, rules: Path, tmp_path: Path
) -> None:
    path = write(events, tmp_path / "events.parquet")
    out = tmp_path / "out"
    as_of = datetime(2024, 7, 15, 12, 30, tzinfo=UTC)
    ok("segment", rules, path, "--as-of", "2024-07-15T12:30:00Z", "--out", out)
    later = pc.sum(pc.greater(events["ts"], as_of)).as_py()
    counts = summary(out)
    assert later > 0
    assert counts["rows_skipped"] == later
    assert counts["rows_read"] == events.num_rows
    assert counts["as_of"].startswith("2024-07-15T12:30:00")
    assert normalized(read_out(out)).equals(engine_memberships(rules, events, as_of))
    # Without --as-of, memberships hold at the latest event.
    out_all = tmp_path / "all"
    ok("segment", rules, path, "--out", out_all)
    latest = pc.max(events["ts"]).as_py()
    assert summary(out_all)["rows_skipped"] == 0
    assert normalized(read_out(out_all)).equals(engine_memberships(rules, events, latest))


# -- line items ------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [7, 100_000])
def test_line_items_group_into_orders(
    events: pa.Table, rules: Path, tmp_path: Path, batch_size: int
) -> None:
    orders = cut(events, AS_OF)
    lines = order_lines(orders)
    assert lines.num_rows > orders.num_rows  # some orders really have several lines
    path = write(lines, tmp_path / "lines.csv")
    out = tmp_path / "out"
    ok(
        "segment", rules, path, "--line-items", "--as-of", AS_OF.date(), "--out", out,
        "--batch-size", batch_size,
    )  # fmt: skip
    assert normalized(read_out(out)).equals(engine_memberships(rules, orders, AS_OF))
    counts = summary(out)
    assert counts["rows_read"] == lines.num_rows
    assert counts["events"] == orders.num_rows
    # The same lines ungrouped count every line as an order.
    ungrouped = tmp_path / "ungrouped"
    ok("segment", rules, path, "--as-of", AS_OF.date(), "--out", ungrouped)
    grouped_orders = pc.sum(read_out(out, "profiles")["orders"]).as_py()
    ungrouped_orders = pc.sum(read_out(ungrouped, "profiles")["orders"]).as_py()
    assert grouped_orders == pc.sum(pc.equal(orders["event_type"], "purchase")).as_py()
    assert ungrouped_orders > grouped_orders


def test_line_items_must_be_adjacent(events: pa.Table, rules: Path, tmp_path: Path) -> None:
    lines = order_lines(cut(events, AS_OF))
    batch = 50
    order_ids = lines["order_id"].to_pylist()
    # An order with several lines in the middle of a batch: one of its lines is moved
    # into the next batch, after other orders.
    first = next(
        i
        for i in range(len(order_ids) - 1)
        if order_ids[i] is not None and order_ids[i] == order_ids[i + 1] and i % batch < batch // 2
    )
    target = (first // batch + 1) * batch + 5
    rows = list(range(lines.num_rows))
    rows.insert(target, rows.pop(first))
    path = write(lines.take(pa.array(rows)), tmp_path / "lines.parquet")
    done = run_cli("segment", rules, path, "--line-items", "--batch-size", batch, "--out", tmp_path)
    assert done.returncode == 1
    assert order_ids[first] in done.stderr and "adjacent" in done.stderr


# -- rejected rows, errors -------------------------------------------------------------


def test_rejected_rows_are_written_with_reasons(
    events: pa.Table, rules: Path, tmp_path: Path
) -> None:
    good = events.slice(0, 500)
    rows = good.to_pylist()
    bad_at = [3, 250, 499]
    rows[3]["customer_id"] = None
    rows[250]["ts"] = None
    rows[499]["customer_id"] = None
    path = write(pa.Table.from_pylist(rows, schema=events.schema), tmp_path / "events.parquet")
    out = tmp_path / "out"
    done = ok("segment", rules, path, "--out", out)
    rejected = read_out(out, "rejected").sort_by("source_row")
    assert rejected["source_row"].to_pylist() == bad_at
    assert set(rejected["source_file"].to_pylist()) == {str(path)}
    assert all(reason for reason in rejected["reason"].to_pylist())
    assert summary(out)["rows_rejected"] == 3
    assert "rejected 3" in done.stdout


def test_rule_error_exits_2_with_the_caret(events: pa.Table, tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("segments:\n  - name: big\n    rule: ltvv >= 300 AND orders > 1\n")
    path = write(events.slice(0, 10), tmp_path / "events.parquet")
    for args in (("segment", rules, path, "--out", tmp_path / "out"), ("check", rules)):
        done = run_cli(*args)
        assert done.returncode == 2, done.stderr
        assert "ltvv" in done.stderr and "^" in done.stderr
        assert not (tmp_path / "out").exists()


def test_missing_and_unreadable_files_are_named(rules: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    done = run_cli("segment", rules, missing, "--out", tmp_path / "out")
    assert done.returncode == 1 and str(missing) in done.stderr
    pattern = tmp_path / "none-*.parquet"
    done = run_cli("segment", rules, pattern, "--out", tmp_path / "out")
    assert done.returncode == 1 and str(pattern) in done.stderr
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("customer_id,ts\nc1,2024-01-01\n")
    done = run_cli("segment", rules, garbage, "--out", tmp_path / "out")
    assert done.returncode == 1 and str(garbage) in done.stderr and "parquet" in done.stderr
    unknown = tmp_path / "events.xlsx"
    unknown.write_text("x")
    done = run_cli("segment", rules, unknown, "--out", tmp_path / "out")
    assert done.returncode == 1 and str(unknown) in done.stderr


def test_bad_as_of_is_a_usage_error(rules: Path, tmp_path: Path) -> None:
    done = run_cli("segment", rules, tmp_path, "--as-of", "last tuesday")
    assert done.returncode == 2 and "last tuesday" in done.stderr


# -- outputs, check, Python API --------------------------------------------------------


@pytest.mark.parametrize("fmt", ["arrow", "csv"])
def test_output_formats(events: pa.Table, rules: Path, tmp_path: Path, fmt: str) -> None:
    path = write(events, tmp_path / "events.parquet")
    out = tmp_path / "out"
    ok("segment", rules, path, "--as-of", AS_OF.date(), "--out", out, "--format", fmt)
    if fmt == "arrow":
        got = feather.read_table(out / "memberships.arrow")
    else:
        got = pacsv.read_csv(
            out / "memberships.csv",
            convert_options=pacsv.ConvertOptions(
                column_types={"customer_id": pa.string()}, strings_can_be_null=True
            ),
        )
        assert (out / "profiles.csv").exists() and (out / "rejected.csv").exists()
    assert normalized(got).equals(engine_memberships(rules, events, AS_OF))


def test_check_describes_every_segment(rules: Path) -> None:
    done = ok("check", rules)
    for name in NAMES:
        assert name in done.stdout


def test_python_api_matches_the_cli(events: pa.Table, rules: Path, tmp_path: Path) -> None:
    from segstream.bulk import resegment, segment_files

    path = write(events, tmp_path / "events.parquet")
    memberships = segment_files(str(rules), path, as_of=AS_OF)
    assert normalized(memberships).equals(engine_memberships(rules, events, AS_OF))
    seen = []
    result = resegment(str(rules), [path], as_of=AS_OF, batch_size=1000, progress=seen.append)
    assert seen and seen[-1].rows_read == events.num_rows
    assert seen[-1].bytes_read == seen[-1].bytes_total == path.stat().st_size
    assert result.customers == memberships.num_rows
    assert result.elapsed > 0


def test_parquet_read_in_runs_of_row_groups_misses_nothing(
    events: pa.Table, rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parquet files are scanned a few row groups at a time; every row still arrives once."""
    from segstream import file_inputs
    from segstream.bulk import resegment

    monkeypatch.setattr(file_inputs, "_ROW_GROUPS_PER_SCAN", 3)
    path = write(events, tmp_path / "events.parquet")
    assert pq.ParquetFile(path).metadata.num_row_groups > 3
    result = resegment(str(rules), path, as_of=AS_OF)
    assert result.rows_read == events.num_rows
    assert normalized(result.memberships).equals(engine_memberships(rules, events, AS_OF))


@pytest.mark.parametrize("threads", [1, 3])
def test_any_number_of_threads_gives_the_same_memberships(
    events: pa.Table, rules: Path, tmp_path: Path, threads: int
) -> None:
    from segstream.bulk import resegment

    path = write(events, tmp_path / "events.parquet")
    result = resegment(str(rules), path, as_of=AS_OF, batch_size=1000, threads=threads)
    assert normalized(result.memberships).equals(engine_memberships(rules, events, AS_OF))
    assert result.engine.snapshot().num_rows == result.customers  # one engine, merged
    reference = segstream.Engine(str(rules))
    reference.ingest(cut(events, AS_OF))
    reference.advance_to(AS_OF)
    assert result.engine.stats() == reference.stats()


def test_dedupe_applies_each_event_id_once(events: pa.Table, rules: Path, tmp_path: Path) -> None:
    """A file exported twice: plain runs count every row (as a GROUP BY would); --dedupe
    applies each event_id once, as the streaming engine does."""
    twice = write(pa.concat_tables([events, events]), tmp_path / "twice.parquet")
    plain, deduped = tmp_path / "plain", tmp_path / "deduped"
    ok("segment", rules, twice, "--as-of", AS_OF.isoformat(), "--out", plain)
    ok("segment", rules, twice, "--as-of", AS_OF.isoformat(), "--out", deduped, "--dedupe")
    assert normalized(read_out(deduped)).equals(engine_memberships(rules, events, AS_OF))
    orders = {
        name: dict(zip(t["customer_id"].to_pylist(), t["orders"].to_pylist(), strict=True))
        for name, t in (
            ("plain", read_out(plain, "profiles")),
            ("deduped", read_out(deduped, "profiles")),
        )
    }
    assert orders["plain"] == {c: 2 * n for c, n in orders["deduped"].items()}
    assert any(n > 0 for n in orders["deduped"].values())


# -- cross-check with DuckDB -----------------------------------------------------------


def test_duckdb_sql_agrees(events: pa.Table, rules: Path, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = write(events, tmp_path / "events.parquet")
    out = tmp_path / "out"
    ok("segment", rules, path, "--as-of", AS_OF.date(), "--out", out)
    as_of = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"
    query = f"""
    WITH e AS (
      SELECT *, CAST(round(amount * 100) AS BIGINT) AS minor FROM read_parquet('{path}')
      WHERE ts <= {as_of}
    ), c AS (
      SELECT customer_id,
        coalesce(sum(minor) FILTER (WHERE event_type = 'purchase'), 0)
          - coalesce(sum(minor) FILTER (WHERE event_type = 'refund'), 0) AS ltv,
        count(*) FILTER (WHERE event_type = 'purchase') AS orders,
        count(*) FILTER (WHERE event_type = 'refund') AS refunds,
        coalesce(sum(coalesce(quantity, 1)) FILTER (WHERE event_type = 'purchase'), 0) AS items,
        max(ts) FILTER (WHERE event_type = 'purchase') AS last_purchase_at,
        coalesce(bool_or(list_contains(categories, 'kitchen'))
          FILTER (WHERE event_type = 'purchase'), false) AS kitchen,
        coalesce(bool_or(list_contains(categories, 'tableware'))
          FILTER (WHERE event_type = 'purchase'), false) AS tableware,
        count(*) FILTER (WHERE event_type = 'purchase' AND list_contains(product_ids, 'p0001')
          AND ts >= {as_of} - INTERVAL 90 DAY) AS coffee_90,
        count(*) FILTER (WHERE event_type = 'page_view'
          AND ts >= {as_of} - INTERVAL 30 DAY) AS views_30
      FROM e GROUP BY customer_id
    )
    SELECT customer_id,
      coalesce(ltv >= 30000, false) AS big_spender,
      coalesce(orders >= 2 AND last_purchase_at < {as_of} - INTERVAL 60 DAY, false) AS dormant,
      kitchen AND NOT tableware AS kitchen_no_tableware,
      coffee_90 >= 2 AS coffee_regular,
      views_30 >= 3 AND orders <= 1 AS browsers,
      refunds >= 1 AS refunders,
      items >= 10 AS many_items,
      CASE WHEN ltv >= 100000 THEN 'gold' WHEN ltv >= 20000 THEN 'silver'
           WHEN orders >= 1 THEN 'regular' END AS tier
    FROM c
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    expected = normalized(con.sql(query).to_arrow_table())
    got = normalized(read_out(out))
    assert got["customer_id"].equals(expected["customer_id"])
    for name in NAMES:
        assert got[name].equals(expected[name]), name


def test_every_customer_is_listed(events: pa.Table, rules: Path, tmp_path: Path) -> None:
    # Also those whose only events are signals no rule reads (email_open here).
    path = write(events, tmp_path / "events.parquet")
    out = tmp_path / "out"
    ok("segment", rules, path, "--as-of", AS_OF.date(), "--out", out)
    customers = pc.unique(cut(events, AS_OF)["customer_id"])
    assert read_out(out).num_rows == len(customers)
