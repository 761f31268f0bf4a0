"""Render a comparison as an aligned text table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from llmobs_core.cli.compare import Comparison
from llmobs_core.cli.formats import escape_controls
from llmobs_core.cli.stats import RESERVOIR_SIZE

_FORMATS = {
    "calls": "{:,.0f}",
    "latency_ms_p50": "{:,.1f}",
    "latency_ms_p95": "{:,.1f}",
    "tokens_per_call": "{:,.1f}",
    "input_tokens_per_call": "{:,.1f}",
    "output_tokens_per_call": "{:,.1f}",
    "cost_usd_per_call": "{:.6f}",
    "error_rate": "{:.2%}",
}
_CSV_FIELDS = (
    "figure",
    "a",
    "b",
    "change",
    "relative_change",
    "test",
    "p_value",
    "significant",
)


def render_compare_text(comparison: Comparison) -> str:
    """Render one line per figure, with a ``*`` where the change is significant."""
    labels = [escape_controls(side.label) for side in (comparison.a, comparison.b)]
    header = ["", *labels, "change", "p-value", ""]
    lines = [header]
    for row in comparison.rows():
        fmt = _FORMATS[row["figure"]]
        relative = row["relative_change"]
        change = "-" if row["change"] is None else fmt.format(row["change"])
        if relative is not None:
            change += f" ({relative:+.1%})"
        lines.append(
            [
                row["figure"],
                _format(row["a"], fmt),
                _format(row["b"], fmt),
                change,
                _format_p_value(row["p_value"]),
                "*" if row["significant"] else "",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )
    return (
        f"{text}\n\n* change larger than noise at alpha {comparison.alpha:g} "
        f"(latency: Mann-Whitney U on a sample of up to {RESERVOIR_SIZE:,} calls "
        "a side; tokens and cost per call: Welch's t-test, unsampled; "
        "error rate: two-proportion z-test)\n"
    )


def _format_p_value(p_value: float | None) -> str:
    if p_value is None:
        return "-"
    return "<0.0001" if p_value < 1e-4 else f"{p_value:.2g}"


def _format(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def compare_json(comparison: Comparison) -> dict[str, Any]:
    """Return the comparison as a JSON-ready dictionary."""
    return {
        "a": comparison.a.label,
        "b": comparison.b.label,
        "alpha": comparison.alpha,
        "rows": comparison.rows(),
        "skipped_lines": {
            "count": comparison.skipped.count,
            "reasons": dict(comparison.skipped.reasons.most_common()),
            "examples": comparison.skipped.examples,
        },
    }


def render_compare_json(comparison: Comparison) -> str:
    """Render the comparison as one indented JSON document.

    Values that are not finite numbers are already None (null), so
    ``allow_nan=False`` only guards against writing invalid JSON.
    """
    return json.dumps(compare_json(comparison), indent=2, allow_nan=False) + "\n"


def render_compare_csv(comparison: Comparison) -> str:
    """Render one CSV row per figure; side labels are in the JSON output only."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in comparison.rows():
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()
