"""Significance tests for ``llmobs compare``: Mann-Whitney U and two proportions."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist

DEFAULT_ALPHA = 0.01
RESERVOIR_SIZE = 5_000


class Reservoir:
    """Uniform random sample of at most ``size`` values from a stream.

    Algorithm R: the n-th value replaces a random slot with probability
    ``size / n``. The generator is seeded, so equal input gives equal samples.
    """

    def __init__(self, size: int = RESERVOIR_SIZE, seed: int = 0) -> None:
        self.size = size
        self.values: list[float] = []
        self.seen = 0
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        """Offer one value to the sample."""
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = value


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Return the two-sided p-value of the Mann-Whitney U test.

    Uses the normal approximation with tie and continuity corrections, which
    suits samples of about 20 values or more per side.

    Returns:
        The p-value, or None when a side is empty or all values are equal.
    """
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return None
    rank_sum_a, tie_term = _rank_sum(a, b)
    n = n1 + n2
    u = rank_sum_a - n1 * (n1 + 1) / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return None
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(variance)
    return 2 * (1 - NormalDist().cdf(max(z, 0.0)))


def _rank_sum(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    # Ranks from 1, tied values share their mean rank; tie_term is sum(t^3 - t).
    labelled = sorted([(value, True) for value in a] + [(value, False) for value in b])
    rank_sum_a = 0.0
    tie_term = 0.0
    start = 0
    while start < len(labelled):
        end = start
        while end + 1 < len(labelled) and labelled[end + 1][0] == labelled[start][0]:
            end += 1
        mean_rank = (start + end) / 2 + 1
        rank_sum_a += mean_rank * sum(
            1 for i in range(start, end + 1) if labelled[i][1]
        )
        ties = end - start + 1
        tie_term += ties**3 - ties
        start = end + 1
    return rank_sum_a, tie_term


def two_proportion_p(
    successes_a: int, total_a: int, successes_b: int, total_b: int
) -> float | None:
    """Return the two-sided p-value of the pooled two-proportion z-test.

    Returns:
        The p-value, or None when a side is empty or the pooled proportion is
        0 or 1 (no variance to test against).
    """
    if total_a == 0 or total_b == 0:
        return None
    pooled = (successes_a + successes_b) / (total_a + total_b)
    variance = pooled * (1 - pooled) * (1 / total_a + 1 / total_b)
    if variance <= 0:
        return None
    z = (successes_b / total_b - successes_a / total_a) / math.sqrt(variance)
    return 2 * (1 - NormalDist().cdf(abs(z)))
