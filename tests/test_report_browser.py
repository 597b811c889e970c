"""The HTML report in a real browser: the system's Chromium, headless, with every request
that is not the file itself refused. No script error, every chart drawn, and the numbers
in its tables are those of the uplift and lifecycle tables `measure_files` returns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from segstream.demo import default_rules
from segstream.generate import write_parquet
from segstream.measure import measure_files

CHROMIUM = os.environ.get("SEGSTREAM_CHROMIUM") or shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH: install Debian's `chromium` package (make venv tries to) "
    "or point SEGSTREAM_CHROMIUM at a Chromium executable",
)
START, END = "2024-01-01", "2025-01-01"

# Per table (a plotly table drawn as SVG), each column's header and its cell texts.
READ_TABLE = """(id) => [...document.querySelectorAll('#' + id + ' .y-column')].map(col => ({
    header: [...col.querySelectorAll('#header .cell-text')].map(t => t.textContent),
    cells: [...col.querySelectorAll('#cells1 .cell-text, #cells2 .cell-text')]
        .map(t => t.textContent),
}))"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("browser")
    rules = folder / "rules.yaml"
    rules.write_text(default_rules(), "utf-8")
    events = write_parquet(folder / "events.parquet", customers=800, events=16_000)
    out = folder / "report.html"
    subprocess.run(
        [sys.executable, "-m", "segstream.cli", "report", rules, events]
        + ["--from", START, "--to", END, "--out", out],
        check=True,
        timeout=300,
    )
    return rules, events, out


@pytest.fixture(scope="module")
def page(report: tuple[Path, Path, Path]) -> Iterator[tuple[Any, list[str], list[str]]]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    errors: list[str] = []
    refused: list[str] = []

    def offline(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        p = browser.new_page(viewport={"width": 1200, "height": 900})
        p.route("**/*", offline)
        p.on("pageerror", lambda e: errors.append(str(e)))
        p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        p.goto(report[2].as_uri())
        p.wait_for_function(
            "[...document.querySelectorAll('.js-plotly-plot')]"
            ".every(d => d.querySelector('svg.main-svg'))",
            timeout=30_000,
        )
        yield p, errors, refused
        browser.close()


def test_no_script_error_and_nothing_fetched(page: tuple[Any, list[str], list[str]]) -> None:
    _, errors, refused = page
    assert errors == []
    assert refused == []


def test_every_chart_is_drawn(page: tuple[Any, list[str], list[str]]) -> None:
    p = page[0]
    drawn = p.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".map(d => [d.id, d.querySelectorAll('svg.main-svg path, svg.main-svg text').length])"
    )
    ids = [name for name, _ in drawn]
    assert ids == [
        "sizes-weekly",
        "sizes-end",
        "sankey-vip_tier",
        "lifecycle-table-vip_tier",
        "uplift-chart",
        "uplift-table",
    ]
    assert all(marks > 10 for _, marks in drawn), drawn


def shown(p: Any, div_id: str) -> dict[str, list[str]]:
    columns = p.evaluate(READ_TABLE, div_id)
    return {c["header"][0]: c["cells"] for c in columns}


def same(text: str, value: Any) -> bool:
    if value is None:
        return text == ""
    if isinstance(value, float):
        return abs(float(text) - value) <= 5e-5
    return text == str(value)


def test_numbers_shown_are_the_measured_tables(
    page: tuple[Any, list[str], list[str]], report: tuple[Path, Path, Path]
) -> None:
    rules, events, _ = report
    measured = measure_files(rules.read_text("utf-8"), events, START, END)
    uplift = shown(page[0], "uplift-table")
    assert uplift["segment"] == measured.uplift["segment"].to_pylist()
    for name in ("treatment_entries", "holdout_entries", "treatment_rate", "lift_ci_low"):
        values = measured.uplift[name].to_pylist()
        assert len(uplift[name]) == len(values)
        assert all(same(t, v) for t, v in zip(uplift[name], values, strict=True)), name
    revenue = [float(v) for v in measured.uplift["incremental_revenue"].to_pylist()]
    assert [float(t) for t in uplift["incremental_revenue"]] == pytest.approx(revenue, abs=1e-4)

    lifecycle = shown(page[0], "lifecycle-table-vip_tier")
    rows = [r for r in measured.lifecycles.to_pylist() if r["lifecycle"] == "vip_tier"]
    assert lifecycle["stage"] == [r["stage"] or "(all)" for r in rows]
    for name in ("members_at_end", "entries", "progressions_in", "dropouts", "completion_rate"):
        assert all(same(t, r[name]) for t, r in zip(lifecycle[name], rows, strict=True)), name
