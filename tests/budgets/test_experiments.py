from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmobs_core
from llmobs_core.context import RequestState, enter_request, exit_request
from llmobs_core.experiments import assign_variant, bucket
from tests.conftest import Observed

ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"user-{i}" for i in range(10_000)]


@pytest.fixture
def request_state() -> Iterator[RequestState]:
    state = RequestState(request_id="r1")
    tokens = enter_request(state)
    try:
        yield state
    finally:
        exit_request(tokens)


@pytest.mark.parametrize(
    ("variants", "error", "message"),
    [
        pytest.param({}, ValueError, "non-empty mapping", id="empty"),
        pytest.param(["a"], ValueError, "non-empty mapping", id="list"),
        pytest.param({"a": 0}, ValueError, "'a' must be a finite", id="zero"),
        pytest.param({"a": 1, "b": -1}, ValueError, "'b'", id="negative"),
        pytest.param({"a": math.nan}, ValueError, "'a'", id="nan"),
        pytest.param({"a": math.inf}, ValueError, "'a'", id="inf"),
        pytest.param({"a": True}, ValueError, "'a'", id="bool"),
        pytest.param({"a": "1"}, ValueError, "'a'", id="string-weight"),
        pytest.param({"": 1}, TypeError, "variant names", id="empty-name"),
        pytest.param({3: 1}, TypeError, "variant names", id="int-name"),
    ],
)
def test_assign_rejects_invalid_variants(
    variants: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        assign_variant("exp", variants, key="k", record=False)


def test_assign_rejects_invalid_names() -> None:
    with pytest.raises(TypeError, match="experiment must be"):
        assign_variant("", {"a": 1}, key="k", record=False)
    with pytest.raises(TypeError, match="needs key"):
        assign_variant("exp", {"a": 1}, key="", record=False)
    with pytest.raises(TypeError, match="needs key"):
        assign_variant("exp", {"a": 1}, key=42, record=False)  # type: ignore[arg-type]


def test_bucket_in_unit_interval() -> None:
    positions = [bucket("exp", key) for key in KEYS[:1000]]
    assert all(0.0 <= p < 1.0 for p in positions)
    assert bucket("ab", "c") != bucket("a", "bc")


def test_assign_deterministic_and_sticky() -> None:
    variants = {"control": 0.9, "new-model": 0.1}
    first = [assign_variant("exp", variants, key=k, record=False) for k in KEYS[:500]]
    again = [assign_variant("exp", variants, key=k, record=False) for k in KEYS[:500]]
    assert first == again


def test_assign_weights_normalized() -> None:
    fractions = {"control": 0.9, "new-model": 0.1}
    counts = {"control": 9, "new-model": 1}
    for key in KEYS[:2000]:
        assert assign_variant("exp", fractions, key=key, record=False) == (
            assign_variant("exp", counts, key=key, record=False)
        )


def test_assign_single_variant() -> None:
    assert assign_variant("exp", {"only": 0.3}, key="k", record=False) == "only"


def test_assign_split_binomial_bound() -> None:
    counts = Counter(
        assign_variant("exp", {"control": 0.9, "new-model": 0.1}, key=k, record=False)
        for k in KEYS
    )
    n, p = len(KEYS), 0.1
    sigma = math.sqrt(n * p * (1 - p))
    # Six standard deviations: a false failure has probability below 1e-8.
    assert abs(counts["new-model"] - n * p) < 6 * sigma
    assert counts["control"] + counts["new-model"] == n


def test_assign_split_chi_square() -> None:
    weights = {"a": 0.5, "b": 0.3, "c": 0.2}
    counts = Counter(
        assign_variant("three", weights, key=k, record=False) for k in KEYS
    )
    n = len(KEYS)
    statistic = sum(
        (counts[name] - n * weight) ** 2 / (n * weight)
        for name, weight in weights.items()
    )
    # With 2 degrees of freedom P(X > x) = exp(-x / 2), so this critical
    # value gives a false-failure probability of 1e-9.
    critical = -2 * math.log(1e-9)
    assert statistic < critical


def test_assign_experiments_independent() -> None:
    variants = {"control": 0.5, "treatment": 0.5}
    first = [assign_variant("one", variants, key=k, record=False) for k in KEYS]
    second = [assign_variant("two", variants, key=k, record=False) for k in KEYS]
    agree = sum(a == b for a, b in zip(first, second, strict=True))
    # Independent fair assignments agree on half the keys, sigma = 50.
    assert abs(agree - len(KEYS) / 2) < 6 * 50


def test_assign_stable_across_processes() -> None:
    variants = {"control": 0.7, "a": 0.2, "b": 0.1}
    keys = KEYS[:300]
    code = (
        "import json, sys; from llmobs_core.experiments import assign_variant; "
        "keys, variants = json.load(sys.stdin); "
        "print(json.dumps([assign_variant('exp', variants, key=k, record=False) "
        "for k in keys]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([keys, variants]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    here = [assign_variant("exp", variants, key=k, record=False) for k in keys]
    assert json.loads(result.stdout) == here


def test_assign_records_on_request_and_span(
    observed: Observed, request_state: RequestState
) -> None:
    with llmobs_core.build_prompt():
        variant = assign_variant("model-swap", {"control": 1, "new": 1}, key="u1")
    with llmobs_core.observe_llm_call("chat", "gpt-4o-mini"):
        pass
    assert request_state.extra == {"experiment": "model-swap", "variant": variant}
    assert observed.events[0]["extra"] == {
        "experiment": "model-swap",
        "variant": variant,
    }
    attributes = observed.span("build_prompt").attributes
    assert attributes is not None
    assert attributes["llmobs.experiment"] == "model-swap"
    assert attributes["llmobs.variant"] == variant


def test_assign_without_record_leaves_request(request_state: RequestState) -> None:
    assign_variant("exp", {"a": 1}, key="k", record=False)
    assert request_state.extra == {}
