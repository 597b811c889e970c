"""One self-contained HTML report over a period (docs/report.md): segment sizes, lifecycle
flows, uplift with its interval and a verdict per segment.

The numbers come from `measure_files`, the same replay as `segstream measure`; this module
only draws them. Plotly's JavaScript is inlined once, so the file opens with no network.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import pyarrow as pa
from plotly.offline import get_plotlyjs

from segstream.engine import Engine, to_epoch_ms
from segstream.measure import BATCH_ROWS, STEP_MS, MeasureResult, measure_files, midnight
from segstream.rules import RuleSet

WEEK = timedelta(days=7)

#: Columns of the uplift table the report shows, in order.
UPLIFT_COLUMNS = [
    "segment",
    "treatment_entries",
    "holdout_entries",
    "treatment_rate",
    "holdout_rate",
    "lift",
    "lift_ci_low",
    "lift_ci_high",
    "incremental_revenue",
]


def report_files(
    rules: Any,
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    start: datetime | date | str,
    end: datetime | date | str,
    *,
    columns: Mapping[str, str] | None = None,
    input_format: str | None = None,
    batch_rows: int = BATCH_ROWS,
    step_ms: int = STEP_MS,
) -> tuple[str, MeasureResult]:
    """Replays `inputs` as `measure_files` does and returns the report's HTML with the
    measurement it shows."""
    ruleset = RuleSet.coerce(rules)
    result = measure_files(
        ruleset,
        inputs,
        start,
        end,
        columns=columns,
        input_format=input_format,
        batch_rows=batch_rows,
        step_ms=step_ms,
    )
    return render(ruleset, result, midnight(start), midnight(end)), result


def verdict(row: Mapping[str, Any]) -> str:
    """A plain-language reading of one uplift row."""
    holdout = row["holdout_entries"]
    if not row["treatment_entries"] or not holdout:
        return f"cannot tell yet: {row['treatment_entries']} treated, {holdout} held out"
    lift, low, high = row["lift"], row["lift_ci_low"], row["lift_ci_high"]
    if lift is None or low is None or high is None:
        return f"cannot tell yet; the holdout has {holdout} members"
    points = f"{lift * 100:+.1f} points"
    if low > 0:
        return f"{points}, significant"
    if high < 0:
        return f"{points}, significantly worse than the holdout"
    return f"{points}, not distinguishable from the holdout; the holdout has {holdout} members"


def render(ruleset: RuleSet, result: MeasureResult, start: datetime, end: datetime) -> str:
    """The report's HTML for a measurement over `[start, end)`."""
    spec = ruleset.to_dict()
    fingerprint = Engine(ruleset).fingerprint
    segments = [s["name"] for s in spec.get("segments", []) or []]
    lifecycles = [lc for lc in spec.get("lifecycles", []) or []]
    changes = result.changes.select(
        ["customer_id", "segment", "change", "from_stage", "to_stage", "at"]
    ).to_pylist()
    lo, hi = to_epoch_ms(start), to_epoch_ms(end)
    in_period = [c for c in changes if lo <= to_epoch_ms(c["at"]) < hi]
    parts: list[str] = []
    period = f"{start:%Y-%m-%d} to {end:%Y-%m-%d} (exclusive)"
    facts = [
        ("period", period),
        ("customers", f"{result.customers:,}"),
        ("events replayed", f"{result.rows:,} ({result.rejected:,} rejected)"),
        ("rule file fingerprint", fingerprint),
    ]
    header = "".join(
        f"<div><b>{html.escape(k)}</b>: <span data-fact='{html.escape(k)}'>"
        f"{html.escape(v)}</span></div>"
        for k, v in facts
    )
    parts.append(f"<h1>segstream report</h1><header>{header}</header>")
    if result.rows == 0 or not in_period and not _entries(result.uplift):
        parts.append(
            "<p id='empty'>Nothing happened in this period: no events and no segment "
            "changes between the dates given.</p>"
        )
        return _page(parts)

    parts.append("<h2>Segment sizes</h2>")
    weeks, sizes = _weekly_sizes(changes, segments, start, end)
    line = go.Figure(
        [go.Scatter(x=weeks, y=sizes[s], name=s, mode="lines+markers") for s in segments]
    )
    line.update_layout(title="Members per segment, weekly", yaxis_title="members")
    parts.append(_figure(line, "sizes-weekly"))
    at_end = [sizes[s][-1] if sizes[s] else 0 for s in segments]
    share = [n / result.customers if result.customers else 0.0 for n in at_end]
    bar = go.Figure(
        go.Bar(
            x=segments,
            y=at_end,
            text=[f"{n:,} ({p:.1%})" for n, p in zip(at_end, share, strict=True)],
        )
    )
    bar.update_layout(title=f"Members at {end:%Y-%m-%d}, share of all customers")
    parts.append(_figure(bar, "sizes-end"))

    for lc in lifecycles:
        name = lc["name"]
        parts.append(f"<h2>Lifecycle {html.escape(name)}</h2>")
        stages = [s["name"] for s in lc["stages"]]
        parts.append(_figure(_sankey(name, stages, in_period), f"sankey-{name}"))
        rows = [r for r in result.lifecycles.to_pylist() if r["lifecycle"] == name]
        cols = result.lifecycles.column_names[1:]
        table = _table(
            cols, [[_text(r[c]) if c != "stage" else (r[c] or "(all)") for r in rows] for c in cols]
        )
        parts.append(_figure(table, f"lifecycle-table-{name}"))

    parts.append("<h2>Uplift against the holdout</h2>")
    uplift = result.uplift.to_pylist()
    if uplift:
        names = [r["segment"] for r in uplift]
        lift = [_points(r["lift"]) for r in uplift]
        plus = [
            _points(r["lift_ci_high"], r["lift"]) - v for r, v in zip(uplift, lift, strict=True)
        ]
        minus = [
            v - _points(r["lift_ci_low"], r["lift"]) for r, v in zip(uplift, lift, strict=True)
        ]
        fig = go.Figure(
            go.Bar(
                x=names,
                y=lift,
                error_y={"type": "data", "array": plus, "arrayminus": minus, "symmetric": False},
            )
        )
        fig.update_layout(
            title="Conversion lift, treatment minus holdout, with its 95% interval",
            yaxis_title="percentage points",
        )
        parts.append(_figure(fig, "uplift-chart"))
        cells = [[_text(r[c]) for r in uplift] for c in UPLIFT_COLUMNS]
        cells.append([verdict(r) for r in uplift])
        parts.append(_figure(_table([*UPLIFT_COLUMNS, "verdict"], cells, 60), "uplift-table"))
    else:
        parts.append("<p>No segment of these rules has a conversion spec to measure.</p>")
    return _page(parts)


def _points(value: float | None, fallback: float | None = None) -> float:
    """A rate difference in percentage points; a missing bound draws no whisker."""
    chosen = value if value is not None else fallback
    return 0.0 if chosen is None else chosen * 100


def _entries(uplift: pa.Table) -> int:
    if uplift.num_rows == 0:
        return 0
    return sum(r["treatment_entries"] + r["holdout_entries"] for r in uplift.to_pylist())


def _weekly_sizes(
    changes: list[dict[str, Any]], segments: list[str], start: datetime, end: datetime
) -> tuple[list[str], dict[str, list[int]]]:
    """Members of each segment at the start of every week of the period and at its end."""
    marks: list[datetime] = []
    t = start
    while t < end:
        marks.append(t)
        t += WEEK
    marks.append(end)
    ordered = sorted(
        (c for c in changes if c["segment"] in segments), key=lambda c: to_epoch_ms(c["at"])
    )
    members: dict[str, set[Any]] = {s: set() for s in segments}
    sizes: dict[str, list[int]] = {s: [] for s in segments}
    i = 0
    for mark in marks:
        ms = to_epoch_ms(mark)
        while i < len(ordered) and to_epoch_ms(ordered[i]["at"]) < ms:
            c = ordered[i]
            if c["change"] == "enter":
                members[c["segment"]].add(c["customer_id"])
            elif c["change"] == "exit":
                members[c["segment"]].discard(c["customer_id"])
            i += 1
        for s in segments:
            sizes[s].append(len(members[s]))
    return [f"{m:%Y-%m-%d}" for m in marks], sizes


def _sankey(name: str, stages: list[str], changes: list[dict[str, Any]]) -> go.Figure:
    """Stage-to-stage moves in the period, with entries, dropouts and completions as nodes."""
    labels = ["entered", *stages, "dropped out", "completed"]
    index = {s: i + 1 for i, s in enumerate(stages)}
    dropped, completed = len(labels) - 2, len(labels) - 1
    flows: dict[tuple[int, int], int] = {}
    for c in changes:
        if c["segment"] != name:
            continue
        src, dst = c["from_stage"], c["to_stage"]
        kind = c["change"]
        if kind == "enter" and dst in index:
            key = (0, index[dst])
        elif kind in ("progress", "regress") and src in index and dst in index:
            key = (index[src], index[dst])
        elif kind == "exit" and src in index:
            key = (index[src], dropped)
        elif kind == "complete" and src in index:
            key = (index[src], completed)
        else:
            continue
        flows[key] = flows.get(key, 0) + 1
    fig = go.Figure(
        go.Sankey(
            node={"label": labels, "pad": 15},
            link={
                "source": [k[0] for k in flows],
                "target": [k[1] for k in flows],
                "value": list(flows.values()),
            },
        )
    )
    fig.update_layout(title=f"{name}: moves between stages in the period")
    return fig


def _table(header: list[str], cells: list[list[str]], row_height: int = 30) -> go.Figure:
    rows = len(cells[0]) if cells else 0
    # The last column is given room to wrap (the uplift verdicts are sentences).
    widths = [1] * (len(header) - 1) + [3 if header[-1] == "verdict" else 1]
    fig = go.Figure(
        go.Table(
            columnwidth=widths,
            header={"values": header},
            cells={"values": cells, "align": "left", "height": row_height},
        )
    )
    fig.update_layout(height=80 + (row_height + 4) * rows, margin={"t": 10, "b": 10})
    return fig


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _figure(fig: go.Figure, div_id: str) -> str:
    body: str = fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False}
    )
    return f"<section class='chart'>{body}</section>"


def _page(parts: list[str]) -> str:
    # `</script` cannot occur inside plotly's bundle as shipped; guard anyway, since the
    # bundle is inlined verbatim.
    script = get_plotlyjs().replace("</script", "<\\/script")
    body = "\n".join(parts)
    meta = json.dumps({"generator": "segstream report"})
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>segstream report</title>"
        f"<script type='application/json' id='meta'>{meta}</script>"
        f"<script>{script}</script>"
        "<style>body{font-family:sans-serif;margin:2em}header div{margin:.2em 0}</style>"
        f"</head><body>{body}</body></html>"
    )


def write_report(path: str | os.PathLike[str], text: str) -> None:
    """Writes the report's HTML to `path`, creating its directory."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
