"""Time variants in interleaved rounds and compare them within each round.

Every variant runs once per round, in an order rotated by one place each
round, so slow phases of a shared machine hit all variants alike. Figures are
medians over rounds, and comparisons are medians of per-round ratios or
differences against the baseline measured in the same round.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """One variant to time.

    Attributes:
        name: Key of the variant in the results.
        run: Runs the given number of operations and returns only when all
            their work is done, flushes of background writers included.
        prepare: Called, untimed, before each timed run of this variant.
    """

    name: str
    run: Callable[[int], None]
    prepare: Callable[[], None] | None = None


@dataclass
class Samples:
    """Per-operation times of one variant in microseconds, one value per round.

    Attributes:
        wall_us: Wall-clock time (``time.perf_counter``).
        cpu_us: CPU time of the whole process, background threads included
            (``time.process_time``).
    """

    wall_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


def measure(
    cases: Sequence[Case], *, operations: int, rounds: int, warmup: int
) -> dict[str, Samples]:
    """Time every case once per round, in an order rotated each round.

    Args:
        cases: The variants.
        operations: Operations per case and round.
        rounds: Number of rounds.
        warmup: Operations per case run once, untimed, before the first round.

    Returns:
        The samples of each case, by name.
    """
    if operations < 1 or rounds < 1:
        raise ValueError(
            f"operations={operations} and rounds={rounds} must both be at least 1"
        )
    for case in cases:
        if case.prepare is not None:
            case.prepare()
        if warmup:
            case.run(warmup)
    samples = {case.name: Samples() for case in cases}
    for round_index in range(rounds):
        shift = round_index % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            if case.prepare is not None:
                case.prepare()
            gc.collect()
            wall_start = time.perf_counter()
            cpu_start = time.process_time()
            case.run(operations)
            cpu = time.process_time() - cpu_start
            wall = time.perf_counter() - wall_start
            samples[case.name].wall_us.append(wall / operations * 1e6)
            samples[case.name].cpu_us.append(cpu / operations * 1e6)
    return samples


def median(values: Sequence[float]) -> float:
    """Return the median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float]) -> float:
    """Return (max - min) / median of the rounds, as a fraction."""
    middle = median(values)
    if not values or middle == 0:
        return math.nan
    return (max(values) - min(values)) / middle


def paired_ratio(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Return the median over rounds of value / baseline of the same round."""
    return median([v / b for v, b in zip(values, baseline, strict=True) if b > 0])


def paired_overhead(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Return the median over rounds of value - baseline of the same round."""
    return median([v - b for v, b in zip(values, baseline, strict=True)])


def overhead_ratio(
    values: Sequence[float], other: Sequence[float], baseline: Sequence[float]
) -> float:
    """Return the median over rounds of (value - base) / (other - base).

    Rounds where ``other`` is not slower than the baseline are left out,
    because their ratio has no meaning; NaN if no round is left.
    """
    ratios = [
        (v - b) / (o - b)
        for v, o, b in zip(values, other, baseline, strict=True)
        if o > b
    ]
    return median(ratios)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format rows as a GitHub Markdown table, first column left-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join([":---", *["---:"] * (len(headers) - 1)]) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def format_number(value: float, digits: int = 1) -> str:
    """Format a number for a table, ``n/a`` for NaN."""
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def format_percent(value: float) -> str:
    """Format a fraction as a whole percentage, ``n/a`` for NaN."""
    if math.isnan(value):
        return "n/a"
    return f"{value * 100:.0f}%"
