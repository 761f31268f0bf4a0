"""The Flask example gateway in-process, against the fake provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from examples.fake_provider.app import FakeProviderConfig
from examples.fake_provider.app import create_app as create_fake_provider
from examples.flask_gateway.app import close_app
from examples.flask_gateway.app import create_app as create_gateway
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
def client(observed: Observed, provider_url: str) -> Iterator[FlaskClient]:
    app = create_gateway(
        provider_url, registry=observed.registry, provider_timeout=PROVIDER_TIMEOUT
    )
    yield app.test_client()
    close_app(app)


def post(
    client: FlaskClient, path: str, body: Any, headers: dict[str, str] | None = None
) -> Any:
    return client.post(path, json=body, headers=headers, buffered=True)


def test_chat_span_tree(observed: Observed, client: FlaskClient) -> None:
    response = post(client, CHAT_PATH, {"message": "How do I export to CSV?"})

    assert response.status_code == 200
    assert response.json["sources"] == ["export-1"]
    request_span = observed.span("POST /api/chat/assistant")
    for stage in STAGES:
        span = observed.span(stage)
        assert span.parent is not None
        assert span.parent.span_id == request_span.context.span_id
    (event,) = observed.events
    assert event["feature_name"] == "chat.assistant"
    assert event["status"] == "ok"
    assert event["request_id"] == response.headers["x-request-id"]


def test_nutrition_stream_and_cache(observed: Observed, client: FlaskClient) -> None:
    body = {"message": "How much protein should I eat a day?", "stream": True}

    first = post(client, NUTRITION_PATH, body)
    second = post(client, NUTRITION_PATH, body)

    assert first.status_code == 200
    assert first.content_type.startswith("text/event-stream")
    assert first.text.count('"delta"') > 1
    assert "event: done" in first.text
    assert '"cached": true' in second.text
    streamed, cached = observed.events
    assert streamed["feature_name"] == "nutrition.coach"
    assert streamed["streaming"] is True
    assert streamed["output_tokens"] > 0
    assert streamed["cache_hit"] is False
    assert cached["cache_hit"] is True
    assert cached["cost_usd"] == 0.0


@pytest.mark.parametrize(
    ("behavior", "status_code", "call_status"),
    [
        ("rate_limit", 429, "rate_limited"),
        ("server_error", 502, "provider_error"),
        ("slow", 504, "timeout"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_provider_error_sets_status(
    observed: Observed,
    client: FlaskClient,
    behavior: str,
    status_code: int,
    call_status: str,
    stream: bool,
) -> None:
    body = {"message": "Can I upgrade my plan?", "stream": stream}

    response = post(client, CHAT_PATH, body, {"x-fake-behavior": behavior})

    assert response.status_code == status_code
    assert response.json["error"]["type"] == call_status
    assert response.json["error"]["request_id"] == response.headers["x-request-id"]
    (event,) = observed.events
    assert event["status"] == call_status
    request_span = observed.span("POST /api/chat/assistant")
    attributes = dict(request_span.attributes or {})
    assert attributes["http.response.status_code"] == status_code


def test_broken_stream_ends_with_error_event(
    observed: Observed, client: FlaskClient
) -> None:
    body = {"message": "How do I reset my password?", "stream": True}

    response = post(client, CHAT_PATH, body, {"x-fake-behavior": "stream_error"})

    assert response.status_code == 200
    assert '"delta"' in response.text
    assert "event: error" in response.text
    assert "event: done" not in response.text
    (event,) = observed.events
    assert event["status"] == "provider_error"


def test_invalid_body_gets_422(observed: Observed, client: FlaskClient) -> None:
    response = post(client, CHAT_PATH, {"message": "", "extra": 1})

    assert response.status_code == 422
    assert response.json["error"]["type"] == "invalid_request"
    assert "message" in response.json["error"]["message"]
    assert "extra" in response.json["error"]["message"]
    assert observed.events == []


def test_healthz_and_metrics_untraced(
    observed: Observed, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    post(client, CHAT_PATH, {"message": "Where is my invoice?"})
    spans_before = len(observed.spans)

    health = client.get("/healthz", buffered=True)
    metrics = client.get("/metrics", buffered=True)

    assert health.json["status"] == "ok"
    assert isinstance(health.json["pid"], int)
    assert "llm_requests_total" in metrics.text
    assert "x-request-id" not in health.headers
    assert "x-request-id" not in metrics.headers
    assert len(observed.spans) == spans_before
