"""Render a report as an aligned text table, JSON or CSV.

Group values and feedback names come from the events, so text output escapes
their control characters and CSV output keeps spreadsheets from reading them
as formulas.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from llmobs_core.cli.aggregate import GroupStats
from llmobs_core.cli.report import GroupKey, Report, top_groups

# (summary key, column title, format) of the numeric columns of a text table.
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("calls", "calls", "{:,}"),
    ("error_rate", "errors", "{:.2%}"),
    ("cache_hits", "cache hits", "{:,}"),
    ("latency_ms_p50", "p50 ms", "{:,.1f}"),
    ("latency_ms_p95", "p95 ms", "{:,.1f}"),
    ("latency_ms_p99", "p99 ms", "{:,.1f}"),
    ("time_to_first_token_ms_p50", "ttft p50 ms", "{:,.1f}"),
    ("input_tokens", "input tok", "{:,}"),
    ("output_tokens", "output tok", "{:,}"),
    ("cost_usd", "cost $", "{:,.4f}"),
    ("cost_usd_per_1k_calls", "$/1k calls", "{:,.4f}"),
)
_CSV_FIELDS = (
    "calls",
    "errors",
    "error_rate",
    "cache_hits",
    "latency_ms_p50",
    "latency_ms_p95",
    "latency_ms_p99",
    "time_to_first_token_ms_p50",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_usd_per_1k_calls",
    "unpriced_calls",
)
TOTAL = "total"

# C0 controls, DEL and C1 controls, each replaced by its \xNN escape. Printed
# raw, ESC starts a terminal escape sequence and a newline breaks a row.
_CONTROL_ESCAPES = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
}
# Bidirectional formatting characters, replaced by their \uNNNN escape: they
# reorder how the rest of a row is displayed.
_CONTROL_ESCAPES.update(
    (code, f"\\u{code:04x}")
    for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)
# Spreadsheets read a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def render_text(report: Report, top: int | None) -> str:
    """Render the totals and one aligned table per grouping."""
    sections = [
        "Totals\n" + _table(("",), [((TOTAL,), report.totals)]),
    ]
    for grouping, table in report.groups.items():
        rows = top_groups(table, top)
        title = grouping_title(grouping, len(table), top)
        sections.append(f"{title}\n{_table(grouping, rows)}")
    if report.feedback_events:
        sections.append(
            f"Feedback events: {report.feedback_events:,}, of which "
            f"{report.feedback_unmatched:,} matched no call in the window"
        )
    return "\n\n".join(sections) + "\n"


def grouping_title(grouping: Sequence[str], group_count: int, top: int | None) -> str:
    """Return the title of one grouping's table, noting a ``--top`` cut."""
    title = f"By {', '.join(grouping)}"
    if top is not None and group_count > top:
        title += f" (top {top} of {group_count} by cost)"
    return title


def _table(titles: Sequence[str], rows: list[tuple[GroupKey, GroupStats]]) -> str:
    return _align(table_cells(titles, rows), text_columns=len(titles))


def table_cells(
    titles: Sequence[str], rows: list[tuple[GroupKey, GroupStats]]
) -> list[list[str]]:
    """Return the header and one formatted row per group, as text cells."""
    names = sorted({name for _key, stats in rows for name in stats.feedback})
    header = [*titles, *(title for _key, title, _f in _COLUMNS)]
    header += [f"{escape_controls(name)} n/mean" for name in names]
    lines = [header]
    for key, stats in rows:
        summary = stats.summary()
        cells = [escape_controls(value) for value in key]
        cells += [_cell(summary[k], fmt) for k, _t, fmt in _COLUMNS]
        for name in names:
            feedback = summary["feedback"].get(name)
            if feedback is None:
                cells.append("-")
            else:
                mean = _cell(feedback["mean"], "{:.3g}")
                cells.append(f"{feedback['count']} / {mean}")
        lines.append(cells)
    return lines


def escape_controls(text: str) -> str:
    r"""Return ``text`` with control characters as ``\xNN``, bidi ones as ``\uNNNN``."""
    return text.translate(_CONTROL_ESCAPES)


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _align(lines: list[list[str]], text_columns: int) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rendered = []
    for line in lines:
        cells = [
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        rendered.append("  ".join(cells).rstrip())
    return "\n".join(rendered)


def report_json(report: Report, top: int | None) -> dict[str, Any]:
    """Return the report as a JSON-ready dictionary."""
    groups = []
    for grouping, table in report.groups.items():
        rows = [
            {"group": dict(zip(grouping, key, strict=True)), **stats.summary()}
            for key, stats in top_groups(table, top)
        ]
        groups.append({"by": list(grouping), "group_count": len(table), "rows": rows})
    return {
        "totals": report.totals.summary(),
        "groups": groups,
        "skipped_lines": {
            "count": report.skipped.count,
            "reasons": dict(report.skipped.reasons.most_common()),
            "examples": report.skipped.examples,
        },
        "feedback": {
            "events": report.feedback_events,
            "unmatched": report.feedback_unmatched,
        },
    }


def render_json(report: Report, top: int | None) -> str:
    """Render the report as one indented JSON document.

    Figures that are not finite numbers are already None (null), so
    ``allow_nan=False`` only guards against writing invalid JSON.
    """
    return json.dumps(report_json(report, top), indent=2, allow_nan=False) + "\n"


def render_csv(report: Report, top: int | None) -> str:
    """Render one CSV row for the totals and one per group.

    The ``by`` column names the grouping fields (``total`` for the totals
    row) and ``group`` their values, both joined with commas. Each feedback
    name adds ``feedback.<name>.count`` and ``feedback.<name>.mean`` columns.
    A ``group`` cell that a spreadsheet would read as a formula starts with
    a single quote.
    """
    rows: list[tuple[str, str, GroupStats]] = [(TOTAL, "", report.totals)]
    for grouping, table in report.groups.items():
        for key, stats in top_groups(table, top):
            rows.append((",".join(grouping), ",".join(key), stats))
    names = sorted({name for _by, _group, stats in rows for name in stats.feedback})
    feedback_fields = [
        f"feedback.{n}.{part}" for n in names for part in ("count", "mean")
    ]
    lines = [_csv_line(["by", "group", *_CSV_FIELDS, *feedback_fields])]
    for by, group, stats in rows:
        summary = stats.summary()
        values = [_csv_value(summary[field]) for field in _CSV_FIELDS]
        for name in names:
            feedback = summary["feedback"].get(name, {"count": 0, "mean": None})
            values += [_csv_value(feedback["count"]), _csv_value(feedback["mean"])]
        lines.append(_csv_line([by, neutralize_formula(group), *values]))
    return "".join(lines)


def _csv_line(cells: list[str]) -> str:
    # Before Python 3.13, csv.writer quotes a field that contains a carriage
    # return only if the line terminator contains one, so a group value with
    # "\r" would end its row for readers. Write "\r\n" and replace it.
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().removesuffix("\r\n") + "\n"


def _csv_value(value: Any) -> str:
    return "" if value is None else str(value)


def neutralize_formula(text: str) -> str:
    """Prefix ``text`` with ``'`` if a spreadsheet would read it as a formula.

    Excel, LibreOffice Calc and Google Sheets evaluate a cell that starts
    with ``=``, ``+``, ``-``, ``@``, tab or carriage return, and read it as
    text after a leading single quote, the defence that OWASP recommends
    against CSV injection. Apply it to text cells only, because it turns a
    negative number into text.
    """
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text
