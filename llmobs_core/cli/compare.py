"""Build the ``llmobs compare`` figures: two sides, their change and its noise."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from llmobs_core.cli.aggregate import GroupStats, finite
from llmobs_core.cli.inputs import Inputs
from llmobs_core.cli.records import Call, Feedback, SkippedLines, parse_lines
from llmobs_core.cli.report import Window
from llmobs_core.cli.stats import (
    Reservoir,
    RunningMoments,
    mann_whitney_p,
    two_proportion_p,
    welch_t_p,
)

# Returns "a", "b" or None (the call is on neither side).
SideOf = Callable[[Call], str | None]


# Figures whose change is tested with Welch's t-test on the per-call values.
MEAN_FIGURES = (
    "tokens_per_call",
    "input_tokens_per_call",
    "output_tokens_per_call",
    "cost_usd_per_call",
)


@dataclasses.dataclass(slots=True)
class Side:
    """Figures of one side, with a latency sample and per-call moments.

    Attributes:
        label: Name of the side in the output.
        stats: Totals of the side's calls.
        latency_sample: Latencies for the Mann-Whitney U test.
        means: Per ``MEAN_FIGURES`` name, the moments of the per-call values.
            Token figures count only the calls that reported them;
            ``tokens_per_call`` is input plus output tokens of the calls that
            reported input tokens. Cost counts every call, unpriced ones as 0.
    """

    label: str
    stats: GroupStats = dataclasses.field(default_factory=GroupStats)
    latency_sample: Reservoir = dataclasses.field(default_factory=Reservoir)
    means: dict[str, RunningMoments] = dataclasses.field(
        default_factory=lambda: {name: RunningMoments() for name in MEAN_FIGURES}
    )

    def add(self, call: Call) -> None:
        """Count one call."""
        fields = call.fields
        self.stats.add(call)
        self.latency_sample.add(fields.latency_ms)
        input_tokens, output_tokens = fields.input_tokens, fields.output_tokens
        if input_tokens is not None:
            self.means["input_tokens_per_call"].add(input_tokens)
            self.means["tokens_per_call"].add(input_tokens + (output_tokens or 0))
        if output_tokens is not None:
            self.means["output_tokens_per_call"].add(output_tokens)
        self.means["cost_usd_per_call"].add(fields.cost_usd or 0.0)

    def figures(self) -> dict[str, float | None]:
        """Return the compared figures of this side."""
        summary = self.stats.summary()
        figures: dict[str, float | None] = {
            "calls": self.stats.calls,
            "latency_ms_p50": summary["latency_ms_p50"],
            "latency_ms_p95": summary["latency_ms_p95"],
        }
        for name in MEAN_FIGURES:
            moments = self.means[name]
            figures[name] = moments.total / moments.count if moments.count else None
        figures["error_rate"] = summary["error_rate"]
        return figures


@dataclasses.dataclass(slots=True)
class Comparison:
    """Both sides of a comparison and the lines skipped."""

    a: Side
    b: Side
    alpha: float
    skipped: SkippedLines = dataclasses.field(default_factory=SkippedLines)

    def rows(self) -> list[dict[str, Any]]:
        """Return one row per figure: both values, the change and the test.

        A value that is not a finite number is None, for example the relative
        change from a cost per call of 1e-320.
        """
        figures_a, figures_b = self.a.figures(), self.b.figures()
        latency_p = mann_whitney_p(
            self.a.latency_sample.values, self.b.latency_sample.values
        )
        error_p = two_proportion_p(
            self.a.stats.errors,
            self.a.stats.calls,
            self.b.stats.errors,
            self.b.stats.calls,
        )
        # The call count is shown without a test.
        tests: dict[str, tuple[str, float | None]] = {
            "latency_ms_p50": ("mann-whitney-u", latency_p),
            "latency_ms_p95": ("mann-whitney-u", latency_p),
            "error_rate": ("two-proportion-z", error_p),
        }
        for name in MEAN_FIGURES:
            p_value = welch_t_p(self.a.means[name], self.b.means[name])
            tests[name] = ("welch-t", p_value)
        rows = []
        for name in figures_a:
            value_a, value_b = figures_a[name], figures_b[name]
            test, p_value = tests.get(name, (None, None))
            rows.append(
                {
                    "figure": name,
                    "a": finite(value_a),
                    "b": finite(value_b),
                    "change": finite(_change(value_a, value_b)),
                    "relative_change": finite(_relative_change(value_a, value_b)),
                    "test": test,
                    "p_value": finite(p_value),
                    "significant": None if p_value is None else p_value < self.alpha,
                }
            )
        return rows


def _change(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _relative_change(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a == 0 else (b - a) / a


def build_comparison(
    inputs: Inputs,
    side_of: SideOf,
    labels: tuple[str, str],
    window: Window,
    alpha: float,
) -> Comparison:
    """Read the inputs once and split the calls in the window into two sides."""
    comparison = Comparison(Side(labels[0]), Side(labels[1]), alpha)
    sides = {"a": comparison.a, "b": comparison.b}
    for source, lines in inputs.sources():
        for event in parse_lines(source, lines, comparison.skipped):
            if isinstance(event, Feedback) or not window.contains(event.timestamp):
                continue
            side = side_of(event)
            if side is not None:
                sides[side].add(event)
    return comparison
