from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core import call_llm, feature
from llmobs_core.emitters import (
    JsonLogEmitter,
    PrometheusEmitter,
    StageEvent,
    install_json_handler,
    metrics_for,
)
from llmobs_core.schema import LLMCallLog
from tests.conftest import TEST_HASH_KEY, Observed

USAGE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "usage": {"prompt_tokens": 100, "completion_tokens": 20},
}


class BrokenEmitter:
    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        self.calls += 1
        raise RuntimeError("backend down")

    def emit_stage(self, event: StageEvent) -> None:
        raise RuntimeError("backend down")


class ListEmitter:
    name = "list"

    def __init__(self) -> None:
        self.events: list[LLMCallLog] = []

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        self.events.append(event)

    def emit_stage(self, event: StageEvent) -> None:
        pass


def test_json_line_matches_schema(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.record(USAGE)

    (line,) = observed.capture.lines
    assert "\n" not in line
    event = LLMCallLog.model_validate_json(line)
    assert set(json.loads(line)) == set(LLMCallLog.model_fields)
    assert event.input_tokens == 100


def test_prometheus_counts_calls_tokens_cost(observed: Observed) -> None:
    with feature("chat"), llmobs_core.bind_context(tenant_tier="pro"):
        for _ in range(3):
            with call_llm(model="gpt-4o-mini", provider="openai") as call:
                call.record(USAGE)

    labels = {"feature_name": "chat", "model": "gpt-4o-mini"}
    assert observed.sample("llm_requests_total", status="ok", **labels) == 3
    assert observed.sample("llm_input_tokens_total", **labels) == 300
    assert observed.sample("llm_output_tokens_total", **labels) == 60
    assert observed.sample("llm_latency_ms_count", **labels) == 3
    cost = observed.sample("llm_cost_usd_total", tenant_tier="pro", **labels)
    assert cost == pytest.approx(3 * (100 * 0.15 + 20 * 0.60) / 1e6)


def test_prometheus_missing_labels_are_unknown(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini"):
        pass

    value = observed.sample(
        "llm_requests_total", feature_name="unknown", model="gpt-4o-mini", status="ok"
    )
    assert value == 1


def test_metrics_registered_once_per_registry() -> None:
    registry = CollectorRegistry()
    first = PrometheusEmitter(registry)
    second = PrometheusEmitter(registry)
    llmobs_core.configure(registry=registry, hash_key=TEST_HASH_KEY)

    assert first.metrics is second.metrics
    assert metrics_for(registry) is first.metrics


def test_failing_emitter_isolated_and_counted(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    broken, kept = BrokenEmitter(), ListEmitter()
    llmobs_core.configure(
        emitters=[broken, kept, PrometheusEmitter(observed.registry)],
        hash_key=TEST_HASH_KEY,
    )
    for _ in range(3):
        with call_llm(model="gpt-4o-mini") as call:
            call.record(USAGE)

    assert broken.calls == 3
    assert len(kept.events) == 3
    # Each call also ends one stage, so both kinds of failure are counted.
    errors = observed.sample("llmobs_emitter_errors_total", emitter="broken")
    assert errors == 6
    warnings = [r for r in caplog.records if "emitter broken failed" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_configure_rejects_non_emitter() -> None:
    with pytest.raises(TypeError, match="emit_call"):
        llmobs_core.configure(emitters=[object()])  # type: ignore[list-item]


def test_configure_rejects_short_hash_key() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        llmobs_core.configure(hash_key="short")


def test_install_json_handler_writes_bare_lines(observed: Observed) -> None:
    import io

    stream = io.StringIO()
    logger = logging.getLogger("llmobs.events")
    install_json_handler(stream)
    handler = install_json_handler(stream)
    try:
        with call_llm(model="gpt-4o-mini"):
            pass
        assert llmobs_core.flush()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    parsed: dict[str, Any] = json.loads(lines[0])
    assert parsed["model"] == "gpt-4o-mini"


def test_json_emitter_silent_when_disabled(observed: Observed) -> None:
    logger = logging.getLogger("test.disabled.events")
    logger.setLevel(logging.WARNING)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    llmobs_core.configure(emitters=[JsonLogEmitter(logger)], hash_key=TEST_HASH_KEY)

    with call_llm(model="gpt-4o-mini"):
        pass

    logger.removeHandler(handler)
    assert records == []


@pytest.mark.parametrize("caller_lookup", [True, False])
def test_json_emitter_record_caller(
    observed: Observed, monkeypatch: pytest.MonkeyPatch, caller_lookup: bool
) -> None:
    # logging._srcfile = None is the logging HOWTO's switch for records
    # without caller information; the emitter's records follow it.
    if not caller_lookup:
        monkeypatch.setattr(logging, "_srcfile", None)
    logger = logging.getLogger("test.caller.events")
    logger.setLevel(logging.INFO)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    llmobs_core.configure(
        emitters=[JsonLogEmitter(logger, background=False)], hash_key=TEST_HASH_KEY
    )
    try:
        with call_llm(model="gpt-4o-mini"):
            pass
    finally:
        logger.removeHandler(handler)

    [record] = records
    if caller_lookup:
        assert record.pathname.endswith("jsonlog.py")
        assert (record.funcName, record.lineno > 0) == ("_log", True)
    else:
        assert (record.pathname, record.lineno, record.funcName) == (
            "(unknown file)",
            0,
            "(unknown function)",
        )


def test_in_flight_gauge_during_call(observed: Observed) -> None:
    labels = {"feature_name": "chat", "model": "gpt-4o-mini"}
    with feature("chat"):
        with call_llm(model="gpt-4o-mini"):
            during = observed.sample("llm_calls_in_flight", **labels)
        after = observed.sample("llm_calls_in_flight", **labels)

    assert during == 1
    assert after == 0


def test_in_flight_gauge_after_failure(observed: Observed) -> None:
    with pytest.raises(TimeoutError), call_llm(model="gpt-4o-mini"):
        raise TimeoutError

    labels = {"feature_name": "unknown", "model": "gpt-4o-mini"}
    assert observed.sample("llm_calls_in_flight", **labels) == 0


def test_region_ttft_retry_cache_metrics(observed: Observed) -> None:
    chunk = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "Hi"}}],
    }
    with feature("chat"), llmobs_core.bind_context(region="eu-west-1"):
        with call_llm(model="gpt-4o-mini") as call:
            call.add_retry("rate_limited")
            call.record_chunk(chunk)
        with call_llm(model="gpt-4o-mini") as call:
            call.mark_cache_hit()

    labels = {"feature_name": "chat", "model": "gpt-4o-mini"}
    regional = {**labels, "region": "eu-west-1"}
    assert observed.sample("llm_requests_total", status="ok", **regional) == 2
    assert observed.sample("llm_latency_ms_count", **regional) == 2
    assert observed.sample("llm_time_to_first_token_ms_count", **regional) == 1
    assert observed.sample("llm_retries_total", **labels) == 1
    assert observed.sample("llm_cache_hits_total", **labels) == 1
