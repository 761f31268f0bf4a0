"""Per-group totals of call events: counts, quantile sketches, sums, feedback."""

from __future__ import annotations

import dataclasses
import math
import operator
from collections import Counter
from collections.abc import Callable
from typing import Any

from llmobs_core.cli.records import ERROR_STATUSES, Call
from llmobs_core.cli.sketch import QuantileSketch

NULL_GROUP = "(none)"
"""Group name shown for events whose group field is null or missing."""


@dataclasses.dataclass(slots=True)
class FeedbackStats:
    """Count and sum of one feedback name's values."""

    count: int = 0
    total: float = 0.0

    @property
    def mean(self) -> float | None:
        """Mean value, None without values or when the sum overflows."""
        return finite(self.total / self.count) if self.count else None


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
        status = fields.status
        self.calls += 1
        self.statuses[status] += 1
        if status in ERROR_STATUSES:
            self.errors += 1
        if fields.cache_hit:
            self.cache_hits += 1
        self.latency_ms.add(fields.latency_ms)
        ttft = fields.time_to_first_token_ms
        if ttft is not None:
            self.time_to_first_token_ms.add(ttft)
        self.input_tokens += fields.input_tokens or 0
        self.output_tokens += fields.output_tokens or 0
        cost = fields.cost_usd
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += cost

    def merge(self, other: GroupStats) -> None:
        """Add the calls and feedback counted in ``other``."""
        self.calls += other.calls
        self.errors += other.errors
        self.cache_hits += other.cache_hits
        self.statuses.update(other.statuses)
        self.latency_ms.merge(other.latency_ms)
        self.time_to_first_token_ms.merge(other.time_to_first_token_ms)
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.unpriced_calls += other.unpriced_calls
        for name, stats in other.feedback.items():
            mine = self.feedback.setdefault(name, FeedbackStats())
            mine.count += stats.count
            mine.total += stats.total

    def add_feedback(self, name: str, value: float) -> None:
        """Count one feedback value on the response to a call in this group."""
        stats = self.feedback.setdefault(name, FeedbackStats())
        stats.count += 1
        stats.total += value

    def summary(self) -> dict[str, Any]:
        """Return the group's figures as a JSON-ready dictionary.

        A figure that is not a finite number is None. The bounds that
        parsing puts on a call's values keep the figures of calls finite, so
        only a sum of feedback values can overflow.
        """
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
            "cost_usd": finite(self.cost_usd),
            "cost_usd_per_1k_calls": finite(_ratio(self.cost_usd * 1000, self.calls)),
            "unpriced_calls": self.unpriced_calls,
            "feedback": {
                name: {"count": stats.count, "mean": stats.mean}
                for name, stats in sorted(self.feedback.items())
            },
        }


def _ratio(numerator: float, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def finite(value: float | None) -> float | None:
    """Return ``value``, or None if it is infinite or NaN.

    JSON has no infinity or NaN, so a figure that overflowed is written as
    null, an empty CSV cell or ``-``.
    """
    if value is None or math.isfinite(value):
        return value
    return None


def group_key(call: Call, fields: tuple[str, ...]) -> tuple[str, ...]:
    """Return the call's values of ``fields``, ``NULL_GROUP`` for null ones."""
    values = (call.group_value(field) for field in fields)
    return tuple(NULL_GROUP if value is None else value for value in values)


def group_key_function(fields: tuple[str, ...]) -> Callable[[Call], tuple[str, ...]]:
    """Return a function of a call that returns ``group_key(call, fields)``.

    The function reads all ``fields`` at once and returns them as they are
    when they are all strings, which is the common case, and calls
    ``group_key`` otherwise.
    """
    if not fields:
        return lambda call: ()
    getter = operator.attrgetter(*fields)
    single = len(fields) == 1

    def key(call: Call) -> tuple[str, ...]:
        values = getter(call.fields)
        if single:
            values = (values,)
        for value in values:
            if type(value) is not str:
                return group_key(call, fields)
        return values

    return key
