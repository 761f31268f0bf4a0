"""Significance tests for ``llmobs compare``: Mann-Whitney U, Welch t, proportions."""

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


class RunningMoments:
    """Count, mean and variance of a stream of values, in constant memory.

    Welford's algorithm updates the mean and the sum of squared deviations
    one value at a time, which avoids the cancellation of ``sum(x**2)``.
    ``total`` is the plain sum, kept for figures that are a sum over a count.
    """

    __slots__ = ("_squared_deviations", "count", "mean", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total: float = 0
        self.mean = 0.0
        self._squared_deviations = 0.0

    def add(self, value: float) -> None:
        """Count one value."""
        self.count += 1
        self.total += value
        delta = value - self.mean
        self.mean += delta / self.count
        self._squared_deviations += delta * (value - self.mean)

    @property
    def variance(self) -> float | None:
        """Sample variance (divisor ``count - 1``), None with fewer than 2 values."""
        if self.count < 2:
            return None
        return self._squared_deviations / (self.count - 1)


def welch_t_p(a: RunningMoments, b: RunningMoments) -> float | None:
    """Return the two-sided p-value of Welch's t-test for equal means.

    The t statistic uses each side's own variance, and the degrees of freedom
    come from the Welch-Satterthwaite equation. When neither side varies, the
    p-value is 0 if the means differ.

    Returns:
        The p-value, or None when a side has fewer than 2 values or neither
        side varies and the means are equal.
    """
    variance_a, variance_b = a.variance, b.variance
    if variance_a is None or variance_b is None:
        return None
    error_a = variance_a / a.count
    error_b = variance_b / b.count
    standard_error = math.sqrt(error_a + error_b)
    if standard_error == 0:
        return None if a.mean == b.mean else 0.0
    t = (b.mean - a.mean) / standard_error
    # (error_a + error_b)**2 / (error_a**2 / (n_a - 1) + error_b**2 / (n_b - 1)),
    # divided through by (error_a + error_b)**2. Squared, the errors of costs
    # near 1e-150 dollars underflow to zero, which would divide by zero.
    share_a = error_a / (error_a + error_b)
    share_b = error_b / (error_a + error_b)
    degrees = 1 / (share_a**2 / (a.count - 1) + share_b**2 / (b.count - 1))
    return student_t_two_sided_p(t, degrees)


def student_t_two_sided_p(t: float, degrees: float) -> float:
    """Return ``P(|T| >= |t|)`` for Student's t with ``degrees`` > 0.

    Uses ``I_x(degrees / 2, 1 / 2)`` with ``x = degrees / (degrees + t**2)``,
    the regularized incomplete beta function.
    """
    x = degrees / (degrees + t * t)
    return regularized_beta(x, degrees / 2, 0.5)


def regularized_beta(x: float, a: float, b: float) -> float:
    """Return the regularized incomplete beta function ``I_x(a, b)``.

    Evaluates the continued fraction by the modified Lentz method (Press et
    al., Numerical Recipes, 3rd ed., section 6.4), on ``I_x(a, b)`` or on
    ``1 - I_(1-x)(b, a)``, whichever converges faster.

    Raises:
        ValueError: If ``x`` is outside [0, 1] or ``a`` or ``b`` is not > 0.
    """
    if not 0 <= x <= 1 or a <= 0 or b <= 0:
        raise ValueError(
            f"regularized_beta(x={x!r}, a={a!r}, b={b!r}) is undefined; "
            "pass 0 <= x <= 1 and a, b > 0"
        )
    if x in (0, 1):
        return float(x)
    log_front = (
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1 - math.exp(log_front) * _beta_fraction(1 - x, b, a) / b


_TINY = 1e-300
_MAX_ITERATIONS = 100_000


def _beta_fraction(x: float, a: float, b: float) -> float:
    # Converges in O(sqrt(max(a, b))) iterations for x < (a + 1) / (a + b + 2).
    c = 1.0
    d = 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, _MAX_ITERATIONS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > _TINY else _TINY)
            c = 1 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            return fraction
    raise ArithmeticError(
        f"incomplete beta fraction for x={x!r}, a={a!r}, b={b!r} did not converge"
    )
