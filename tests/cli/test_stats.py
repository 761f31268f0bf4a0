from __future__ import annotations

import random
import statistics

import pytest

from llmobs_core.cli.stats import (
    Reservoir,
    RunningMoments,
    mann_whitney_p,
    regularized_beta,
    student_t_two_sided_p,
    two_proportion_p,
    welch_t_p,
)


def test_mann_whitney_detects_shift() -> None:
    rng = random.Random(1)
    a = [rng.lognormvariate(6.0, 0.5) for _ in range(2_000)]
    b = [rng.lognormvariate(6.1, 0.5) for _ in range(2_000)]
    p_value = mann_whitney_p(a, b)
    assert p_value is not None
    assert p_value < 0.01


def test_mann_whitney_same_distribution() -> None:
    rng = random.Random(2)
    a = [rng.lognormvariate(6.0, 0.5) for _ in range(2_000)]
    b = [rng.lognormvariate(6.0, 0.5) for _ in range(2_000)]
    p_value = mann_whitney_p(a, b)
    assert p_value is not None
    assert p_value > 0.01


def test_mann_whitney_known_value() -> None:
    # scipy.stats.mannwhitneyu([1, 2, 3, 4, 5], [6, 7, 8, 9, 10],
    # method="asymptotic") gives p = 0.012185 (continuity-corrected).
    p_value = mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert p_value is not None
    assert abs(p_value - 0.012185) < 1e-5


def test_mann_whitney_degenerate() -> None:
    assert mann_whitney_p([], [1.0]) is None
    assert mann_whitney_p([1.0, 1.0], [1.0, 1.0]) is None


def test_two_proportion_detects_change() -> None:
    p_value = two_proportion_p(20, 2_000, 60, 2_000)
    assert p_value is not None
    assert p_value < 0.01


def test_two_proportion_no_change() -> None:
    p_value = two_proportion_p(40, 2_000, 44, 2_000)
    assert p_value is not None
    assert p_value > 0.01


def test_two_proportion_degenerate() -> None:
    assert two_proportion_p(0, 0, 1, 10) is None
    assert two_proportion_p(0, 10, 0, 10) is None


def test_reservoir_bounded_and_uniform() -> None:
    reservoir = Reservoir(size=1_000, seed=5)
    for value in range(100_000):
        reservoir.add(float(value))
    assert len(reservoir.values) == 1_000
    assert reservoir.seen == 100_000
    mean = sum(reservoir.values) / len(reservoir.values)
    assert 45_000 < mean < 55_000


def moments(values: list[float]) -> RunningMoments:
    result = RunningMoments()
    for value in values:
        result.add(value)
    return result


def test_running_moments_match_statistics() -> None:
    rng = random.Random(4)
    values = [rng.lognormvariate(8.0, 1.5) for _ in range(5_000)]
    result = moments(values)
    assert result.count == 5_000
    assert result.total == pytest.approx(sum(values))
    assert result.mean == pytest.approx(statistics.fmean(values))
    assert result.variance == pytest.approx(statistics.variance(values))


def test_running_moments_one_value() -> None:
    assert moments([3.0]).variance is None


@pytest.mark.parametrize(
    ("t", "degrees", "expected"),
    [
        # 2 * scipy.stats.t.sf(abs(t), degrees), scipy 1.17.
        (2.0, 10, 0.07338803477074037),
        (0.5, 3.3, 0.6485350763995584),
        (5.0, 1, 0.1256659163780024),
        (-2.6, 4000.7, 0.009356652494389727),
        (0.0, 7, 1.0),
    ],
)
def test_student_t_known_values(t: float, degrees: float, expected: float) -> None:
    assert student_t_two_sided_p(t, degrees) == pytest.approx(expected, rel=1e-9)


def test_regularized_beta_known_values() -> None:
    # scipy.special.betainc(a, b, x), scipy 1.17.
    assert regularized_beta(0.3, 2.5, 0.5) == pytest.approx(0.018927124071945658)
    assert regularized_beta(0.99995, 50_000.0, 0.5) == pytest.approx(
        0.025345854168846868, rel=1e-9
    )


def test_regularized_beta_invalid_argument() -> None:
    with pytest.raises(ValueError, match=r"x=1\.5"):
        regularized_beta(1.5, 1.0, 1.0)


def test_welch_known_value() -> None:
    # scipy.stats.ttest_ind(a, b, equal_var=False) gives p = 0.04928433820673053.
    p_value = welch_t_p(moments([1, 2, 3, 4, 5]), moments([2, 4, 6, 8, 10, 12]))
    assert p_value == pytest.approx(0.04928433820673053, rel=1e-9)


def test_welch_detects_shift() -> None:
    rng = random.Random(5)
    a = moments([rng.lognormvariate(6.0, 0.8) for _ in range(2_000)])
    b = moments([rng.lognormvariate(6.2, 0.8) for _ in range(2_000)])
    p_value = welch_t_p(a, b)
    assert p_value is not None
    assert p_value < 0.01


def test_welch_same_distribution() -> None:
    rng = random.Random(6)
    a = moments([rng.lognormvariate(6.0, 0.8) for _ in range(2_000)])
    b = moments([rng.lognormvariate(6.0, 0.8) for _ in range(2_000)])
    p_value = welch_t_p(a, b)
    assert p_value is not None
    assert p_value > 0.01


def test_welch_without_variance() -> None:
    assert welch_t_p(moments([1.0]), moments([1.0, 2.0])) is None
    assert welch_t_p(moments([2.0, 2.0]), moments([2.0, 2.0])) is None
    assert welch_t_p(moments([2.0, 2.0]), moments([3.0, 3.0])) == 0.0


def test_welch_tiny_values_scale_invariant() -> None:
    # The t-test does not depend on the unit, but squaring the standard
    # errors of values near 1e-150 (about 1e-300) underflows to zero.
    scale = 1e-150
    a = moments([value * scale for value in (1, 2, 3, 4, 5)])
    b = moments([value * scale for value in (2, 4, 6, 8, 10, 12)])
    assert welch_t_p(a, b) == pytest.approx(0.04928433820673053, rel=1e-9)
