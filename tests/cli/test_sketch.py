from __future__ import annotations

import math
import random

import pytest

from llmobs_core.cli.sketch import QuantileSketch


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_sketch_quantile_within_one_percent(seed: int, q: float) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(6, 1.2) for _ in range(20_000)]
    sketch = QuantileSketch()
    for value in values:
        sketch.add(value)
    estimate = sketch.quantile(q)
    exact = exact_quantile(values, q)
    assert estimate is not None
    assert abs(estimate - exact) / exact <= 0.01


def test_sketch_buckets_bounded() -> None:
    rng = random.Random(7)
    sketch = QuantileSketch()
    for _ in range(50_000):
        sketch.add(rng.uniform(0.001, 86_400_000))
    # log(8.64e10) / log(1.0202) is about 1,260 buckets.
    assert sketch.bucket_count < 1_300
    assert sketch.count == 50_000


def test_sketch_merge_equals_single() -> None:
    rng = random.Random(3)
    values = [rng.expovariate(0.01) for _ in range(5_000)]
    whole, first, second = QuantileSketch(), QuantileSketch(), QuantileSketch()
    for index, value in enumerate(values):
        whole.add(value)
        (first if index % 2 else second).add(value)
    first.merge(second)
    for q in (0.0, 0.5, 0.95, 1.0):
        assert first.quantile(q) == whole.quantile(q)
    assert first.count == whole.count


def test_sketch_zero_and_empty() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    sketch.add(0.0)
    sketch.add(0.0)
    sketch.add(10.0)
    assert sketch.quantile(0.5) == 0.0
    top = sketch.quantile(1.0)
    assert top is not None
    assert abs(top - 10.0) / 10.0 <= 0.01


def test_sketch_rejects_invalid_arguments() -> None:
    with pytest.raises(ValueError, match=r"relative_accuracy=1\.5"):
        QuantileSketch(1.5)
    with pytest.raises(ValueError, match="q=2"):
        QuantileSketch().quantile(2)
    with pytest.raises(ValueError, match="same accuracy"):
        QuantileSketch(0.01).merge(QuantileSketch(0.02))
