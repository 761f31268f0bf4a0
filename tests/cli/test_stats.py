from __future__ import annotations

import random

from llmobs_core.cli.stats import Reservoir, mann_whitney_p, two_proportion_p


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
