"""The provider receives the gateway's trace context and request id."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import requests
from opentelemetry import propagate

import llmobs_core as llmobs
from examples.fake_provider.app import FakeProviderConfig, create_app
from llmobs_core.context import RequestState, enter_request, exit_request
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    with run_uvicorn_in_thread(create_app(FakeProviderConfig(latency_scale=0))) as url:
        yield url


@pytest.fixture
def request_state() -> Iterator[RequestState]:
    state = RequestState(request_id="gw-req-42", tenant_tier="pro", region="eu")
    tokens = enter_request(state)
    yield state
    exit_request(tokens)


def received_headers(provider_url: str) -> dict[str, str]:
    requests_seen = httpx.get(f"{provider_url}/_fake/requests").json()["requests"]
    headers: dict[str, str] = requests_seen[-1]["headers"]
    return headers


def assert_call_is_parent(observed: Observed, headers: dict[str, str]) -> None:
    span = observed.span("call_llm")
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert trace_id == f"{span.context.trace_id:032x}"
    assert parent_id == f"{span.context.span_id:016x}"
    assert headers["x-request-id"] == "gw-req-42"


def test_openai_async_client_hooks(
    observed: Observed, provider_url: str, request_state: RequestState
) -> None:
    async def call() -> None:
        async with openai.AsyncOpenAI(
            base_url=f"{provider_url}/v1",
            api_key="test",
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(
                event_hooks=llmobs.httpx_event_hooks(asynchronous=True)
            ),
        ) as client:
            with llmobs.call_llm(model="gpt-4o-mini"):
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES
                )

    asyncio.run(call())

    assert_call_is_parent(observed, received_headers(provider_url))


def test_openai_sync_client_hooks(
    observed: Observed, provider_url: str, request_state: RequestState
) -> None:
    with (
        openai.OpenAI(
            base_url=f"{provider_url}/v1",
            api_key="test",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(
                event_hooks=llmobs.httpx_event_hooks()
            ),
        ) as client,
        llmobs.call_llm(model="gpt-4o-mini"),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert_call_is_parent(observed, received_headers(provider_url))


def test_extra_headers_per_call(
    observed: Observed, provider_url: str, request_state: RequestState
) -> None:
    with (
        openai.OpenAI(
            base_url=f"{provider_url}/v1", api_key="test", max_retries=0
        ) as client,
        llmobs.call_llm(model="gpt-4o-mini"),
    ):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers=llmobs.outgoing_headers(),
        )

    assert_call_is_parent(observed, received_headers(provider_url))


def test_plain_httpx_client_hooks(
    observed: Observed, provider_url: str, request_state: RequestState
) -> None:
    body = {"model": "m", "messages": MESSAGES}
    with (
        httpx.Client(event_hooks=llmobs.httpx_event_hooks()) as client,
        llmobs.call_llm(model="m"),
    ):
        client.post(f"{provider_url}/v1/chat/completions", json=body)

    assert_call_is_parent(observed, received_headers(provider_url))


def test_requests_session(
    observed: Observed, provider_url: str, request_state: RequestState
) -> None:
    body = {"model": "m", "messages": MESSAGES}
    with requests.Session() as session:
        llmobs.instrument_requests(session, baggage_fields=["tenant_tier"])
        with llmobs.call_llm(model="m"):
            session.post(f"{provider_url}/v1/chat/completions", json=body, timeout=5)

    headers = received_headers(provider_url)
    assert_call_is_parent(observed, headers)
    assert headers["baggage"] == "llmobs.tenant_tier=pro"


def test_baggage_rejects_identifiers() -> None:
    with pytest.raises(ValueError, match="never sent"):
        llmobs.httpx_event_hooks(baggage_fields=["tenant_id"])


def test_no_request_no_request_id(observed: Observed) -> None:
    headers = llmobs.outgoing_headers()

    assert "X-Request-ID" not in headers
    assert "traceparent" not in headers


def raise_on_inject(*args: object, **kwargs: object) -> None:
    raise RuntimeError("propagator failed")


def test_requests_session_survives_failing_propagator(
    observed: Observed,
    provider_url: str,
    request_state: RequestState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(propagate, "inject", raise_on_inject)
    body = {"model": "m", "messages": MESSAGES}
    with requests.Session() as session:
        llmobs.instrument_requests(session)
        with llmobs.call_llm(model="m"):
            response = session.post(
                f"{provider_url}/v1/chat/completions", json=body, timeout=5
            )

    assert response.status_code == 200
    assert "traceparent" not in received_headers(provider_url)
    errors = observed.sample("llmobs_emitter_errors_total", emitter="propagation")
    assert errors == 1


def test_outgoing_headers_survive_failing_propagator(
    observed: Observed,
    request_state: RequestState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(propagate, "inject", raise_on_inject)

    headers = llmobs.outgoing_headers()

    assert headers == {"X-Request-ID": request_state.request_id}
    errors = observed.sample("llmobs_emitter_errors_total", emitter="propagation")
    assert errors == 1
