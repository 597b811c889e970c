"""Writes the report of the demo data and its screenshot (docs/img/report.png, shown in the
README), with the system Chromium headless through playwright.

    python scripts/report_screenshot.py [OUT_DIR]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright
from segstream.demo import default_rules
from segstream.generate import write_parquet
from segstream.report import report_files, write_report

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium on PATH: run `make chromium` first", file=sys.stderr)
        return 1
    image = ROOT / "docs" / "img" / "report.png"
    with tempfile.TemporaryDirectory() as tmp:
        # The history `segstream demo` streams (its default sizes and seed).
        events = write_parquet(Path(tmp) / "events.parquet", customers=20_000, events=400_000)
        text, _ = report_files(default_rules(), events, "2024-01-01", "2025-01-01")
        html = Path(sys.argv[1] if len(sys.argv) > 1 else tmp) / "report.html"
        write_report(html, text)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(html.as_uri())
            page.wait_for_selector("#uplift-table svg.main-svg")
            image.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(image), full_page=True)
            browser.close()
    print(f"wrote {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
