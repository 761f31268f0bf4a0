"""A wrapped provider stream returned from a FastAPI endpoint and consumed by
StreamingResponse after the endpoint (and its call_llm block) returned."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

import llmobs_core as llmobs
from examples.fake_provider.app import FakeProviderConfig, create_app
from llmobs_asgi import LLMObsMiddleware
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed, span_times

MESSAGES: list[Any] = [{"role": "user", "content": "Plan a week of breakfasts."}]


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    config = FakeProviderConfig(latency_scale=0.05)
    with run_uvicorn_in_thread(create_app(config)) as url:
        yield f"{url}/v1"


def gateway(provider_url: str) -> FastAPI:
    client = openai.AsyncOpenAI(base_url=provider_url, api_key="test", max_retries=0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(LLMObsMiddleware, features={"/stream": "chat.stream"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
            chunks = call.wrap_stream(
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )

        async def events() -> AsyncIterator[str]:
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield f"data: {chunk.choices[0].delta.content}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def wait_for_events(observed: Observed, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(observed.events) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_stream_event_after_handler_returned(
    observed: Observed, provider_url: str
) -> None:
    with run_uvicorn_in_thread(gateway(provider_url)) as url:
        response = httpx.get(f"{url}/stream", timeout=10)
        wait_for_events(observed, 1)
        request_span = None
        deadline = time.monotonic() + 5
        while request_span is None and time.monotonic() < deadline:
            request_span = next(
                (s for s in observed.spans if s.name == "GET /stream"), None
            )
            time.sleep(0.01)

    (event,) = observed.events
    assert response.text.count("data:") > 1
    assert event["status"] == "ok"
    assert event["feature_name"] == "chat.stream"
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["output_tokens"] > 0
    assert event["usage_estimated"] is False
    assert request_span is not None
    call_span = observed.span("call_llm")
    assert call_span.parent is not None
    assert call_span.parent.span_id == request_span.context.span_id
    assert span_times(call_span)[1] <= span_times(request_span)[1]


def test_stream_client_disconnect_cancels_call(
    observed: Observed, provider_url: str
) -> None:
    slow = FakeProviderConfig(latency_scale=1.0)
    with (
        run_uvicorn_in_thread(create_app(slow)) as slow_url,
        run_uvicorn_in_thread(gateway(f"{slow_url}/v1")) as url,
    ):
        with httpx.stream("GET", f"{url}/stream", timeout=10) as response:
            next(response.iter_lines())
        wait_for_events(observed, 1)

    (event,) = observed.events
    assert event["status"] == "cancelled"
    assert event["chunk_count"] >= 1
