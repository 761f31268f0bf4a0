"""Per-group totals of call events: counts, quantile sketches, sums, feedback."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from llmobs_core.cli.records import Call
from llmobs_core.cli.sketch import QuantileSketch

GROUP_FIELDS = (
    "feature_name",
    "model",
    "tenant_tier",
    "region",
    "prompt_template_id",
    "variant",
)
"""Fields that ``--by`` accepts; ``variant`` is read from ``extra`` when it is
not a field of the event."""

NULL_GROUP = "(none)"
"""Group name shown for events whose group field is null or missing."""


@dataclasses.dataclass(slots=True)
class FeedbackStats:
    """Count and sum of one feedback name's values."""

    count: int = 0
    total: float = 0.0

    @property
    def mean(self) -> float | None:
        """Mean value, None without values."""
        return self.total / self.count if self.count else None


@dataclasses.dataclass(slots=True)
class GroupStats:
    """Running totals of the calls in one group, in memory bounded by sketches."""

    calls: int = 0
    errors: int = 0
    cache_hits: int = 0
    statuses: Counter[str] = dataclasses.field(default_factory=Counter)
    latency_ms: QuantileSketch = dataclasses.field(default_factory=QuantileSketch)
    time_to_first_token_ms: QuantileSketch = dataclasses.field(
        default_factory=QuantileSketch
    )
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    feedback: dict[str, FeedbackStats] = dataclasses.field(default_factory=dict)

    def add(self, call: Call) -> None:
        """Count one call."""
        fields = call.fields
        self.calls += 1
        self.statuses[fields["status"]] += 1
        if call.is_error:
            self.errors += 1
        if fields.get("cache_hit"):
            self.cache_hits += 1
        self.latency_ms.add(fields["latency_ms"])
        ttft = fields.get("time_to_first_token_ms")
        if ttft is not None:
            self.time_to_first_token_ms.add(ttft)
        self.input_tokens += fields.get("input_tokens") or 0
        self.output_tokens += fields.get("output_tokens") or 0
        cost = fields.get("cost_usd")
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += cost

    def add_feedback(self, name: str, value: float) -> None:
        """Count one feedback value on the response to a call in this group."""
        stats = self.feedback.setdefault(name, FeedbackStats())
        stats.count += 1
        stats.total += value

    def summary(self) -> dict[str, Any]:
        """Return the group's figures as a JSON-ready dictionary."""
        return {
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": _ratio(self.errors, self.calls),
            "cache_hits": self.cache_hits,
            "statuses": dict(sorted(self.statuses.items())),
            "latency_ms_p50": self.latency_ms.quantile(0.50),
            "latency_ms_p95": self.latency_ms.quantile(0.95),
            "latency_ms_p99": self.latency_ms.quantile(0.99),
            "time_to_first_token_ms_p50": self.time_to_first_token_ms.quantile(0.5),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "cost_usd_per_1k_calls": _ratio(self.cost_usd * 1000, self.calls),
            "unpriced_calls": self.unpriced_calls,
            "feedback": {
                name: {"count": stats.count, "mean": stats.mean}
                for name, stats in sorted(self.feedback.items())
            },
        }


def _ratio(numerator: float, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def group_key(call: Call, fields: tuple[str, ...]) -> tuple[str, ...]:
    """Return the call's values of ``fields``, ``NULL_GROUP`` for null ones."""
    values = (call.group_value(field) for field in fields)
    return tuple(NULL_GROUP if value is None else value for value in values)
