"""A wrapped provider stream consumed by Flask's stream_with_context after the
view (and its call_llm block) returned."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from flask import Flask, Response, stream_with_context

import llmobs_core as llmobs
from examples.fake_provider.app import FakeProviderConfig, create_app
from llmobs_flask import LLMObs
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed, span_times

MESSAGES: list[Any] = [{"role": "user", "content": "Plan a week of lunches."}]


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    with run_uvicorn_in_thread(create_app(FakeProviderConfig(latency_scale=0))) as url:
        yield f"{url}/v1"


@pytest.fixture
def flask_app(provider_url: str) -> Iterator[Flask]:
    client = openai.OpenAI(base_url=provider_url, api_key="test", max_retries=0)
    app = Flask(__name__)
    LLMObs(app, features={"/stream": "chat.stream"})

    @app.get("/stream")
    def stream() -> Response:
        with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
            chunks = call.wrap_stream(
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )

        def events() -> Iterator[str]:
            with chunks:
                for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield f"data: {chunk.choices[0].delta.content}\n\n"

        return Response(stream_with_context(events()), mimetype="text/event-stream")

    yield app
    client.close()


def test_flask_stream_event_after_view(observed: Observed, flask_app: Flask) -> None:
    response = flask_app.test_client().get("/stream")
    body = response.get_data(as_text=True)

    (event,) = observed.events
    assert body.count("data:") > 1
    assert event["status"] == "ok"
    assert event["feature_name"] == "chat.stream"
    assert event["request_id"] == response.headers["X-Request-ID"]
    assert event["output_tokens"] > 0
    request_span = observed.span("GET /stream")
    call_span = observed.span("call_llm")
    assert call_span.parent is not None
    assert call_span.parent.span_id == request_span.context.span_id
    assert span_times(call_span)[1] <= span_times(request_span)[1]


def test_flask_stream_closed_early(observed: Observed, flask_app: Flask) -> None:
    response = flask_app.test_client().get("/stream", buffered=False)
    chunks = iter(response.response)
    next(chunks)
    response.close()

    (event,) = observed.events
    assert event["status"] == "cancelled"
    request_span = observed.span("GET /stream")
    assert dict(request_span.attributes or {})["llmobs.client_closed"] is True
