r"""Render ``llmobs report`` as one self-contained HTML page with SVG charts.

The page loads nothing: its CSS and SVG charts are inline and it has no
JavaScript. Every value taken from the events goes through ``html.escape``,
because event fields such as ``feature_name`` come from applications. Its
control characters are also written as ``\xNN``, as in the text output.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from llmobs_core.cli.aggregate import NULL_GROUP
from llmobs_core.cli.formats import (
    TOTAL,
    escape_controls,
    grouping_title,
    table_cells,
)
from llmobs_core.cli.inputs import Inputs
from llmobs_core.cli.records import Call, SkippedLines, parse_lines
from llmobs_core.cli.report import Report, Window, top_groups
from llmobs_core.cli.sketch import QuantileSketch

BUCKETS = 20
"""Time buckets of the latency chart, spread over the calls' time range."""

_CHART_WIDTH = 640
_LABEL_WIDTH = 200
_BAR_WIDTH = 330
_ROW_HEIGHT = 22
_PLOT_LEFT = 70
_PLOT_TOP = 10
_PLOT_WIDTH = 550
_PLOT_HEIGHT = 200
_MAX_LABEL_CHARS = 28
# Colors of the model lines (matplotlib's "tab10"), reused past ten models.
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
svg { font-size: 12px; }
svg text { fill: #222; }
"""


@dataclasses.dataclass(slots=True)
class ChartData:
    """Figures of the two charts, from the calls in the report's window.

    Attributes:
        start: Timestamp of the earliest call, None without calls.
        bucket_seconds: Width of one time bucket in seconds.
        buckets: Number of time buckets.
        cost_by_feature: Sum of ``cost_usd`` per ``feature_name``.
        latency: Per model, a ``latency_ms`` sketch per bucket index.
    """

    start: datetime | None = None
    bucket_seconds: float = 1.0
    buckets: int = BUCKETS
    cost_by_feature: dict[str, float] = dataclasses.field(default_factory=dict)
    latency: dict[str, dict[int, QuantileSketch]] = dataclasses.field(
        default_factory=dict
    )


def collect_chart_data(
    inputs: Inputs, window: Window, buckets: int = BUCKETS
) -> ChartData:
    """Collect the chart figures in two passes: time range first, then figures.

    The range from the earliest to the latest call is split into ``buckets``
    equal buckets. Memory grows with models times buckets, not with calls.
    """
    data = ChartData(buckets=buckets)
    time_range = _time_range(_calls(inputs, window))
    if time_range is None:
        return data
    data.start, end = time_range
    span = (end - data.start).total_seconds()
    data.bucket_seconds = span / buckets if span > 0 else 1.0
    for call in _calls(inputs, window):
        _add_call(data, call)
    return data


def _time_range(calls: Iterator[Call]) -> tuple[datetime, datetime] | None:
    first: datetime | None = None
    last: datetime | None = None
    for call in calls:
        if first is None or call.timestamp < first:
            first = call.timestamp
        if last is None or call.timestamp > last:
            last = call.timestamp
    return None if first is None or last is None else (first, last)


def _calls(inputs: Inputs, window: Window) -> Iterator[Call]:
    # build_report already counted and reported the malformed lines.
    skipped = SkippedLines()
    for source, lines in inputs.sources():
        for event in parse_lines(source, lines, skipped):
            if isinstance(event, Call) and window.contains(event.timestamp):
                yield event


def _add_call(data: ChartData, call: Call) -> None:
    assert data.start is not None
    feature = call.group_value("feature_name")
    feature = NULL_GROUP if feature is None else feature
    cost = call.fields.cost_usd or 0.0
    data.cost_by_feature[feature] = data.cost_by_feature.get(feature, 0.0) + cost
    offset = (call.timestamp - data.start).total_seconds()
    bucket = min(int(offset / data.bucket_seconds), data.buckets - 1)
    sketches = data.latency.setdefault(call.fields.model, {})
    sketches.setdefault(bucket, QuantileSketch()).add(call.fields.latency_ms)


def render_html(report: Report, top: int | None, charts: ChartData) -> str:
    """Render the report's tables and the two charts as one HTML page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        "<title>llmobs report</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<h1>llmobs report</h1>",
        *_table_sections(report, top),
        "<h2>Cost per feature (USD)</h2>",
        render_cost_chart(charts.cost_by_feature, top),
        f"<h2>p95 latency (ms) per model, {charts.buckets} time buckets</h2>",
        render_latency_chart(charts),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _table_sections(report: Report, top: int | None) -> Iterator[str]:
    yield "<h2>Totals</h2>"
    yield _html_table(table_cells(("",), [((TOTAL,), report.totals)]), 1)
    for grouping, table in report.groups.items():
        yield f"<h2>{_escape(grouping_title(grouping, len(table), top))}</h2>"
        rows = top_groups(table, top)
        yield _html_table(table_cells(grouping, rows), len(grouping))
    if report.feedback_events:
        yield (
            f"<p>Feedback events: {report.feedback_events:,}, of which "
            f"{report.feedback_unmatched:,} matched no call in the window</p>"
        )


def _html_table(cells: list[list[str]], text_columns: int) -> str:
    header, *rows = cells
    lines = ["<table>", "<thead>", _html_row(header, "th", text_columns), "</thead>"]
    lines.append("<tbody>")
    lines.extend(_html_row(row, "td", text_columns) for row in rows)
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _html_row(cells: Sequence[str], tag: str, text_columns: int) -> str:
    rendered = [
        f"<{tag}>{_escape(cell)}</{tag}>"
        if i < text_columns
        else f'<{tag} class="num">{_escape(cell)}</{tag}>'
        for i, cell in enumerate(cells)
    ]
    return "<tr>" + "".join(rendered) + "</tr>"


def render_cost_chart(cost_by_feature: dict[str, float], top: int | None) -> str:
    """Render the cost per feature as horizontal SVG bars, costliest first.

    A cost that is not a finite number (a sum that overflowed) is shown as
    ``-`` without a bar.
    """
    rows = sorted(cost_by_feature.items(), key=lambda item: (-item[1], item[0]))
    rows = rows if top is None else rows[:top]
    if not rows:
        return "<p>No calls in the window.</p>"
    finite_costs = [cost for _name, cost in rows if math.isfinite(cost)]
    maximum = max(finite_costs, default=0.0) or 1.0
    height = _ROW_HEIGHT * len(rows) + 10
    parts = [_svg_open(height, "Cost per feature in USD")]
    for index, (name, cost) in enumerate(rows):
        y = 5 + index * _ROW_HEIGHT
        is_finite = math.isfinite(cost)
        width = _BAR_WIDTH * cost / maximum if is_finite else 0.0
        value_x = _LABEL_WIDTH + width + 6
        value = f"${cost:,.4f}" if is_finite else "-"
        label = _escape(f"{name}: {value}")
        parts += [
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">'
            f"{_escape(_clip(name))}<title>{_escape(name)}</title></text>",
            f'<rect x="{_LABEL_WIDTH}" y="{y + 3}" width="{width:.1f}" '
            f'height="{_ROW_HEIGHT - 6}" fill="{_PALETTE[0]}"><title>{label}</title>'
            "</rect>",
            f'<text x="{value_x:.1f}" y="{y + 15}">{value}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def render_latency_chart(charts: ChartData) -> str:
    """Render the p95 latency per time bucket as one SVG polyline per model."""
    series = _p95_series(charts)
    if charts.start is None or not series:
        return "<p>No calls in the window.</p>"
    maximum = max(p95 for points in series.values() for _bucket, p95 in points)
    maximum = maximum or 1.0
    legend_top = _PLOT_TOP + _PLOT_HEIGHT + 40
    height = legend_top + 18 * len(series)
    parts = [_svg_open(height, "p95 latency in ms per model over time")]
    parts += _latency_axes(charts, maximum)
    for index, (model, points) in enumerate(sorted(series.items())):
        color = _PALETTE[index % len(_PALETTE)]
        parts += _latency_line(charts.buckets, maximum, model, points, color)
        parts += _legend_entry(legend_top + 18 * index, model, color)
    parts.append("</svg>")
    return "\n".join(parts)


def _p95_series(charts: ChartData) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for model, sketches in charts.latency.items():
        points = []
        for bucket, sketch in sorted(sketches.items()):
            p95 = sketch.quantile(0.95)
            # Parsing bounds latency_ms, so p95 is finite. An infinite one
            # would make every coordinate NaN.
            if p95 is not None and math.isfinite(p95):
                points.append((bucket, p95))
        if points:
            series[model] = points
    return series


def _latency_axes(charts: ChartData, maximum: float) -> list[str]:
    assert charts.start is not None
    end = charts.start + timedelta(seconds=charts.bucket_seconds * charts.buckets)
    bottom = _PLOT_TOP + _PLOT_HEIGHT
    right = _PLOT_LEFT + _PLOT_WIDTH
    return [
        f'<line x1="{_PLOT_LEFT}" y1="{_PLOT_TOP}" x2="{_PLOT_LEFT}" y2="{bottom}" '
        'stroke="#888"/>',
        f'<line x1="{_PLOT_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" '
        'stroke="#888"/>',
        f'<text x="{_PLOT_LEFT - 6}" y="{_PLOT_TOP + 10}" text-anchor="end">'
        f"{maximum:,.1f}</text>",
        f'<text x="{_PLOT_LEFT - 6}" y="{bottom}" text-anchor="end">0</text>',
        f'<text x="{_PLOT_LEFT}" y="{bottom + 16}">'
        f"{_escape(charts.start.isoformat())}</text>",
        f'<text x="{right}" y="{bottom + 16}" text-anchor="end">'
        f"{_escape(end.isoformat())}</text>",
    ]


def _latency_line(
    buckets: int,
    maximum: float,
    model: str,
    points: list[tuple[int, float]],
    color: str,
) -> list[str]:
    coordinates = [
        (
            _PLOT_LEFT + _PLOT_WIDTH * (bucket + 0.5) / buckets,
            _PLOT_TOP + _PLOT_HEIGHT * (1 - p95 / maximum),
        )
        for bucket, p95 in points
    ]
    joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    parts = [
        f'<polyline points="{joined}" fill="none" stroke="{color}" '
        f'stroke-width="2"><title>{_escape(model)}</title></polyline>'
    ]
    for (x, y), (_bucket, p95) in zip(coordinates, points, strict=True):
        label = _escape(f"{model}: p95 {p95:,.1f} ms")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
            f"<title>{label}</title></circle>"
        )
    return parts


def _legend_entry(y: int, model: str, color: str) -> list[str]:
    return [
        f'<rect x="{_PLOT_LEFT}" y="{y - 10}" width="12" height="12" fill="{color}"/>',
        f'<text x="{_PLOT_LEFT + 18}" y="{y}">{_escape(model)}</text>',
    ]


def _svg_open(height: int, title: str) -> str:
    # Inline SVG in HTML needs no xmlns attribute, so the page has no URL.
    return (
        f'<svg width="{_CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_CHART_WIDTH} {height}" role="img">'
        f"<title>{_escape(title)}</title>"
    )


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_LABEL_CHARS else text[: _MAX_LABEL_CHARS - 1] + "…"


def _escape(text: str) -> str:
    return html.escape(escape_controls(text), quote=True)
