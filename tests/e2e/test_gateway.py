"""The example gateway in-process, against the fake provider, observed end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from examples.fake_provider.app import FakeProviderConfig
from examples.fake_provider.app import create_app as create_fake_provider
from examples.fastapi_gateway.app import create_app as create_gateway
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed

CHAT_PATH = "/api/chat/assistant"
NUTRITION_PATH = "/api/nutrition/coach"
STAGES = ("retrieve_context", "build_prompt", "call_llm", "postprocess")
PROVIDER_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    config = FakeProviderConfig(latency_scale=0, slow_seconds=2.0)
    with run_uvicorn_in_thread(create_fake_provider(config)) as url:
        yield f"{url}/v1"


@pytest.fixture
def gateway(observed: Observed, provider_url: str) -> Iterator[httpx.Client]:
    app = create_gateway(
        provider_url, registry=observed.registry, provider_timeout=PROVIDER_TIMEOUT
    )
    with (
        run_uvicorn_in_thread(app) as url,
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        yield client


def post_stream(
    client: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, str]:
    body = {"message": "How much protein should I eat a day?", "stream": True}
    with client.stream("POST", path, json=body, headers=headers) as response:
        return response, response.read().decode()


def wait_for_span(observed: Observed, name: str, timeout: float = 5.0) -> ReadableSpan:
    # The request span ends after the server sends the last body message, so
    # the client can hold the response before the span is exported.
    deadline = time.monotonic() + timeout
    while name not in observed.names() and time.monotonic() < deadline:
        time.sleep(0.01)
    return observed.span(name)


def requests_total(observed: Observed, feature: str, model: str, status: str) -> Any:
    return observed.sample(
        "llm_requests_total", feature_name=feature, model=model, status=status
    )


def test_chat_request_logged(observed: Observed, gateway: httpx.Client) -> None:
    headers = {"x-tenant-id": "acme", "x-tenant-tier": "enterprise"}
    body = {"message": "How do I export a report to CSV?"}

    response = gateway.post(CHAT_PATH, json=body, headers=headers)

    assert response.status_code == 200
    assert response.json()["cached"] is False
    (event,) = observed.events
    assert event["feature_name"] == "chat.assistant"
    assert event["model"] == "gpt-4o-mini"
    assert event["input_tokens"] > 0
    assert event["output_tokens"] > 0
    assert event["status"] == "ok"
    assert event["streaming"] is False
    assert event["tenant_tier"] == "enterprise"
    assert event["request_id"] == response.headers["x-request-id"]
    assert requests_total(observed, "chat.assistant", "gpt-4o-mini", "ok") == 1


def test_chat_request_span_tree(observed: Observed, gateway: httpx.Client) -> None:
    gateway.post(CHAT_PATH, json={"message": "Where do I create an API key?"})

    root = wait_for_span(observed, "POST /api/chat/assistant")
    assert root.parent is None
    for stage in STAGES:
        span = observed.span(stage)
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id
        assert span.context.trace_id == root.context.trace_id


def test_nutrition_stream_logged(observed: Observed, gateway: httpx.Client) -> None:
    response, text = post_stream(gateway, NUTRITION_PATH)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert '"delta"' in text
    assert "event: done" in text
    (event,) = observed.events
    assert event["feature_name"] == "nutrition.coach"
    assert event["model"] == "gpt-4.1-mini"
    assert event["input_tokens"] > 0
    assert event["output_tokens"] > 0
    assert event["status"] == "ok"
    assert event["streaming"] is True
    assert event["time_to_first_token_ms"] is not None
    assert event["request_id"] == response.headers["x-request-id"]
    assert requests_total(observed, "nutrition.coach", "gpt-4.1-mini", "ok") == 1


def test_nutrition_repeat_hits_cache(observed: Observed, gateway: httpx.Client) -> None:
    body = {"message": "Is one soda a day too much sugar?"}

    first = gateway.post(NUTRITION_PATH, json=body)
    second = gateway.post(NUTRITION_PATH, json=body)

    assert first.json()["cached"] is False
    assert second.json()["cached"] is True
    assert second.json()["answer"] == first.json()["answer"]
    hit = observed.events[1]
    assert hit["cache_hit"] is True
    assert hit["cost_usd"] == 0.0
    assert hit["input_tokens"] is None


@pytest.mark.parametrize(
    ("behavior", "status_code", "call_status"),
    [
        ("rate_limit", 429, "rate_limited"),
        ("server_error", 502, "provider_error"),
        ("overloaded", 502, "provider_error"),
        ("bad_request", 502, "provider_error"),
        ("slow", 504, "timeout"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_provider_error_mapped(
    observed: Observed,
    gateway: httpx.Client,
    behavior: str,
    status_code: int,
    call_status: str,
    stream: bool,
) -> None:
    body = {"message": "Can I upgrade my plan?", "stream": stream}

    response = gateway.post(CHAT_PATH, json=body, headers={"x-fake-behavior": behavior})

    assert response.status_code == status_code
    error = response.json()["error"]
    assert error["type"] == call_status
    assert error["request_id"] == response.headers["x-request-id"]
    (event,) = observed.events
    assert event["status"] == call_status
    assert event["request_id"] == response.headers["x-request-id"]
    assert requests_total(observed, "chat.assistant", "gpt-4o-mini", call_status) == 1


def test_rate_limit_forwards_retry_after(gateway: httpx.Client) -> None:
    response = gateway.post(
        CHAT_PATH, json={"message": "Hi"}, headers={"x-fake-behavior": "rate_limit"}
    )

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_broken_stream_ends_with_error_event(
    observed: Observed, gateway: httpx.Client
) -> None:
    response, text = post_stream(
        gateway, CHAT_PATH, headers={"x-fake-behavior": "stream_error"}
    )

    assert response.status_code == 200
    assert '"delta"' in text
    assert "event: error" in text
    assert "event: done" not in text
    (event,) = observed.events
    assert event["status"] == "provider_error"
    assert event["streaming"] is True


def test_metrics_served(observed: Observed, gateway: httpx.Client) -> None:
    gateway.post(CHAT_PATH, json={"message": "How do I invite a teammate?"})

    response = gateway.get("/metrics")

    assert response.status_code == 200
    assert "llm_requests_total{" in response.text
    assert 'feature_name="chat.assistant"' in response.text


def test_healthz_not_observed(observed: Observed, gateway: httpx.Client) -> None:
    response = gateway.get("/healthz")

    assert response.json() == {"status": "ok"}
    assert "x-request-id" not in response.headers
    assert observed.spans == ()


def test_invalid_body_rejected(observed: Observed, gateway: httpx.Client) -> None:
    response = gateway.post(CHAT_PATH, json={"message": ""})

    assert response.status_code == 422
    assert observed.events == []
