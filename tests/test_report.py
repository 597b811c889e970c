"""`segstream report` as a subprocess: one HTML file that needs no network, with a chart
for every part of the measurement, and a period with nothing in it says so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from segstream.demo import default_rules
from segstream.generate import write_parquet


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("report")
    rules = folder / "rules.yaml"
    rules.write_text(default_rules(), "utf-8")
    events = write_parquet(folder / "events.parquet", customers=800, events=16_000)
    return rules, events


def run_report(rules: Path, events: Path, out: Path, start: str, end: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "segstream.cli", "report", rules, events]
        + ["--from", start, "--to", end, "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out.read_text("utf-8")


def test_report_is_one_file_with_every_chart(demo: tuple[Path, Path], tmp_path: Path) -> None:
    rules, events = demo
    text = run_report(rules, events, tmp_path / "r.html", "2024-01-01", "2025-01-01")
    # Self-contained: no script, stylesheet or image is fetched from anywhere.
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    for chart in ("sizes-weekly", "sizes-end", "sankey-vip_tier", "uplift-chart", "uplift-table"):
        assert f'id="{chart}"' in text, chart
    customers = re.search(r"data-fact='customers'>([\d,]+)<", text)
    assert customers is not None and 0 < int(customers[1].replace(",", "")) <= 800
    assert "16,000 (0 rejected)" in text
    assert "Nothing happened" not in text


def test_an_empty_period_gives_a_report_that_says_so(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    rules, events = demo
    text = run_report(rules, events, tmp_path / "empty.html", "2031-01-01", "2031-02-01")
    assert "Nothing happened in this period" in text
    assert "2031-01-01 to 2031-02-01" in text
