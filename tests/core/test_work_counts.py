"""Guards against regressions in the work done per call, counted, not timed."""

from __future__ import annotations

import gc
import logging
import tracemalloc

import llmobs_core
from llmobs_core import call_llm, feature
from llmobs_core.context import RequestState, enter_request, exit_request
from llmobs_core.emitters import JsonLogEmitter, OTelSpanEmitter, PrometheusEmitter
from tests.conftest import Observed

RESPONSE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30},
}

# Retained memory allowed per call once warm; a leak of one event, span or
# context per call would be several kilobytes.
MAX_RETAINED_BYTES_PER_CALL = 64


def run_calls(count: int) -> None:
    for index in range(count):
        tokens = enter_request(RequestState(request_id=f"r{index}", tenant_tier="pro"))
        try:
            with (
                feature("chat"),
                call_llm(model="gpt-4o-mini", provider="openai") as call,
            ):
                call.record(RESPONSE)
        finally:
            exit_request(tokens)


def metric_children(observed: Observed) -> int:
    return sum(len(metric.samples) for metric in observed.registry.collect())


def test_one_span_per_call(observed: Observed) -> None:
    run_calls(50)

    assert observed.names() == ["call_llm"] * 50


def test_no_new_metric_children_after_warm_up(observed: Observed) -> None:
    run_calls(10)
    warm = metric_children(observed)
    run_calls(200)

    assert metric_children(observed) == warm


def test_retained_memory_flat(observed: Observed) -> None:
    # The fixture keeps every span and log line; measure llmobs alone, with
    # the JSON lines going to a logger that keeps nothing.
    quiet = logging.getLogger("test.memory.events")
    quiet.setLevel(logging.INFO)
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    llmobs_core.configure(
        emitters=[
            JsonLogEmitter(quiet),
            PrometheusEmitter(observed.registry),
            OTelSpanEmitter(),
        ],
        hash_key="k" * 32,
    )
    run_calls(300)
    assert llmobs_core.flush(timeout=10)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run_calls(2000)
        assert llmobs_core.flush(timeout=10)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()

    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth / 2000 < MAX_RETAINED_BYTES_PER_CALL
