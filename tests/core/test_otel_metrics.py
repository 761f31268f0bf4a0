from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)

import llmobs_core
from llmobs_core import call_llm
from tests.conftest import TEST_HASH_KEY, Observed

RESPONSE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30},
}


def collect(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, Any] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name] = metric
    return found


def test_genai_metrics_recorded_unsampled() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    llmobs_core.configure(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF),
        meter_provider=meter_provider,
        registry=CollectorRegistry(),
        hash_key=TEST_HASH_KEY,
    )
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.record(RESPONSE)

    metrics = collect(reader)
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert point.count == 1
    assert dict(point.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    }
    assert list(point.explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    tokens = {
        dict(p.attributes)["gen_ai.token.type"]: p.sum
        for p in metrics["gen_ai.client.token.usage"].data.data_points
    }
    assert tokens == {"input": 120, "output": 30}
    meter_provider.shutdown()


def test_time_to_first_chunk_for_streams() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    llmobs_core.configure(
        meter_provider=meter_provider,
        registry=CollectorRegistry(),
        hash_key=TEST_HASH_KEY,
    )
    chunk = {
        "object": "chat.completion.chunk",
        "choices": [{"delta": {"content": "a"}}],
    }
    with call_llm(model="gpt-4o-mini") as call:
        call.record_chunk(chunk)

    metrics = collect(reader)
    (point,) = metrics["gen_ai.client.operation.time_to_first_chunk"].data.data_points
    assert point.count == 1
    meter_provider.shutdown()


def test_no_meter_provider_no_otel_metrics(observed: Observed) -> None:
    names = [emitter.name for emitter in observed.config.fanout.emitters]

    assert "otel_metrics" not in names


def test_latency_exemplar_in_openmetrics(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        call.record(RESPONSE)

    trace_id = observed.events[0]["trace_id"]
    assert f'trace_id="{trace_id}"' in generate_openmetrics(observed.registry).decode()
    assert "trace_id" not in generate_latest(observed.registry).decode()


def test_error_type_attribute() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    llmobs_core.configure(
        meter_provider=meter_provider,
        registry=CollectorRegistry(),
        hash_key=TEST_HASH_KEY,
    )
    with pytest.raises(TimeoutError), call_llm(model="gpt-4o-mini"):
        raise TimeoutError

    (point,) = collect(reader)["gen_ai.client.operation.duration"].data.data_points
    assert dict(point.attributes)["error.type"] == "TimeoutError"
    meter_provider.shutdown()


def test_lone_surrogate_replaced_in_attributes() -> None:
    reader = InMemoryMetricReader()
    llmobs_core.configure(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[reader]),
        registry=CollectorRegistry(),
        hash_key=TEST_HASH_KEY,
    )
    lone = json.loads('"gpt-4o-mini \\ud800"')
    with call_llm(model=lone, provider="openai") as call:
        call.record({**RESPONSE, "model": lone})

    (point,) = collect(reader)["gen_ai.client.operation.duration"].data.data_points
    assert point.attributes["gen_ai.request.model"] == "gpt-4o-mini \ufffd"
    assert point.attributes["gen_ai.response.model"] == "gpt-4o-mini \ufffd"
