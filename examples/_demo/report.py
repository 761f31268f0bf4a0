"""Summarize the demo's call events, metrics and spans as text."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Record = dict[str, Any]

STAGES = ("retrieve_context", "build_prompt", "call_llm", "postprocess")

# Span attributes printed in the span tree, in this order, when present.
TREE_ATTRIBUTES = (
    "http.route",
    "http.response.status_code",
    "llm.feature_name",
    "llmobs.tenant_id",
    "llmobs.tenant_tier",
    "knowledge_base",
    "template",
    "llm.model",
    "llm.status",
    "llm.streaming",
    "llm.cache_hit",
    "llm.input_tokens",
    "llm.output_tokens",
    "llm.cost_usd",
    "llm.time_to_first_token_ms",
)

# Request attributes that llmobs repeats on inner spans, shown on the root only.
REQUEST_ATTRIBUTES = frozenset(
    {"llm.feature_name", "llmobs.tenant_id", "llmobs.tenant_tier"}
)


def read_json_lines(path: Path) -> list[Record]:
    """Read one JSON object per line. A missing file has no records."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Align columns: the first and last left-aligned, the others right-aligned."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    last = len(header) - 1
    lines = []
    for row in table:
        cells = [
            cell.ljust(width) if i in (0, last) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def feature_table(events: Sequence[Record]) -> str:
    """Tabulate calls, tokens, cost, p95 latency and errors per feature.

    The p95 latency is the nearest-rank percentile over all calls of the
    feature, cache hits and failed calls included.
    """
    by_feature: dict[str, list[Record]] = defaultdict(list)
    for event in events:
        by_feature[event["feature_name"] or "(none)"].append(event)
    header = (
        "feature",
        "calls",
        "cache hits",
        "streamed",
        "input tokens",
        "output tokens",
        "cost USD",
        "p95 latency ms",
        "errors by status",
    )
    rows = [_feature_row(name, group) for name, group in sorted(by_feature.items())]
    return format_table(header, rows)


def _feature_row(name: str, events: Sequence[Record]) -> list[str]:
    latencies = sorted(event["latency_ms"] for event in events)
    p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]
    errors = Counter(e["status"] for e in events if e["status"] != "ok")
    error_text = ", ".join(f"{status} {n}" for status, n in sorted(errors.items()))
    return [
        name,
        str(len(events)),
        str(sum(1 for e in events if e["cache_hit"])),
        str(sum(1 for e in events if e["streaming"])),
        f"{sum(e['input_tokens'] or 0 for e in events):,}",
        f"{sum(e['output_tokens'] or 0 for e in events):,}",
        f"{sum(e['cost_usd'] or 0.0 for e in events):.6f}",
        f"{p95:.1f}",
        error_text or "none",
    ]


def llm_metric_lines(exposition: str) -> list[str]:
    """Return the ``llm_*`` samples of a Prometheus text exposition.

    Comment lines and the ``*_created`` timestamps are left out.
    """
    lines = []
    for line in exposition.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name.startswith("llm_") and not name.endswith("_created"):
            lines.append(line)
    return lines


def metric_total(exposition: str, sample_name: str) -> float:
    """Return the sum of all samples named ``sample_name`` in an exposition."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == sample_name
    )


def worker_summary(events_per_worker: dict[int, int], requests_total: float) -> str:
    """Describe how the call events split over worker processes."""
    counts = ", ".join(
        f"pid {pid}: {count}" for pid, count in sorted(events_per_worker.items())
    )
    return (
        f"Call events per gunicorn worker: {counts}.\n"
        f"llm_requests_total in one /metrics scrape, summed over its series: "
        f"{requests_total:g}."
    )


def pick_request_trace(spans: Sequence[Record]) -> list[Record] | None:
    """Return the spans of one request that ran all four stages.

    Prefers a request whose provider call succeeded without the cache and
    which came with a ``traceparent`` header, then the earliest one.
    """
    by_trace: dict[str, list[Record]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    candidates = [trace for trace in by_trace.values() if _ran_all_stages(trace)]
    if not candidates:
        return None
    return min(candidates, key=_trace_preference)


def _ran_all_stages(trace: Sequence[Record]) -> bool:
    names = {span["name"] for span in trace}
    return all(stage in names for stage in STAGES)


def _trace_preference(trace: Sequence[Record]) -> tuple[bool, bool, int]:
    calls = [span for span in trace if span["name"] == "call_llm"]
    served = any(
        span["attributes"].get("llm.status") == "ok"
        and not span["attributes"].get("llm.cache_hit")
        for span in calls
    )
    remote_parent = any(span["parent_is_remote"] for span in trace)
    start = min(span["start_time_unix_nano"] for span in trace)
    return (not served, not remote_parent, start)


def span_tree(trace: Sequence[Record]) -> str:
    """Render a trace's spans as a tree indented by parent, with durations."""
    span_ids = {span["span_id"] for span in trace}
    children: dict[str, list[Record]] = defaultdict(list)
    roots = []
    for span in sorted(trace, key=lambda s: s["start_time_unix_nano"]):
        parent = span["parent_span_id"]
        if parent in span_ids:
            children[parent].append(span)
        else:
            roots.append(span)
    lines = [f"trace_id {trace[0]['trace_id']}"]
    for root in roots:
        if root["parent_span_id"] is not None:
            lines.append(
                f"parent span {root['parent_span_id']} belongs to the caller "
                "(from its traceparent header)"
            )
        _add_tree_lines(root, children, 0, lines)
    return "\n".join(lines)


def _add_tree_lines(
    span: Record, children: dict[str, list[Record]], depth: int, lines: list[str]
) -> None:
    duration_ms = (span["end_time_unix_nano"] - span["start_time_unix_nano"]) / 1e6
    label = f"{'  ' * depth}{span['name']}"
    attributes = _tree_attributes(span, is_root=depth == 0)
    line = f"{label:<34} {span['kind']:<8} {duration_ms:9.2f} ms  {attributes}"
    lines.append(line.rstrip())
    for child in children.get(span["span_id"], []):
        _add_tree_lines(child, children, depth + 1, lines)


def _tree_attributes(span: Record, *, is_root: bool) -> str:
    attributes = span["attributes"]
    parts = []
    for name in TREE_ATTRIBUTES:
        value = attributes.get(name)
        if value is None or (name in REQUEST_ATTRIBUTES and not is_root):
            continue
        if isinstance(value, float):
            value = f"{value:.6g}"
        parts.append(f"{name}={value}")
    return " ".join(parts)
