"""Failures inside llmobs never change the user's response.

Each case serves the same request from a Flask app and from a FastAPI app,
each with and without its llmobs middleware, with one llmobs part made to
fail for the observed request only. The status, the headers apart from
``X-Request-ID`` and the body bytes must be equal. Every case also checks
that the failing part was reached, so that a request which skipped it
cannot pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from flask import Flask, Response

import llmobs_core
from llmobs_asgi import LLMObsMiddleware
from llmobs_flask import LLMObs
from tests.conftest import TEST_HASH_KEY, Observed
from tests.reliability._isolation import (
    CHUNKS,
    FAULT_CASES,
    OUTGOING_URL,
    REDIS_OUTAGES,
    RESPONSE,
    Fault,
    HostileResponse,
    comparable_headers,
    configure_raising_emitter,
    configure_redis_budget,
    raising_propagator,
)

FRAMEWORKS = ["flask", "fastapi"]
FEATURES = {"/api/*": "chat.assistant"}
REQUEST_HEADERS = {"x-tenant-id": "acme"}
# Usage of the budgeted call, so that it has a cost to add to the store.
INPUT_TOKENS = 1_000
OUTPUT_TOKENS = 100

# Status, comparable headers and body bytes of one response.
Served = tuple[int, list[tuple[str, str]], bytes]


def provider_reply(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=RESPONSE)


def create_flask_app(*, observed: bool, response: object) -> Flask:
    app = Flask(__name__)
    if observed:
        LLMObs(app, features=FEATURES)

    @app.post("/api/chat")
    def chat() -> dict[str, str]:
        with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
            call.record(response)
        return {"answer": "ok"}

    @app.post("/api/stream")
    def stream() -> Response:
        with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
            chunks = call.wrap_stream(iter(CHUNKS))
        return Response(chunks, mimetype="text/event-stream")

    @app.post("/api/budget")
    def budget() -> tuple[dict[str, str], int]:
        decision = llmobs_core.budget_decision()
        if decision.denied:
            return {"error": "budget exceeded"}, 429
        with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
            call.set_usage(input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS)
        return {"answer": "ok", "outcome": str(decision.outcome)}, 200

    @app.post("/api/outgoing")
    def outgoing() -> dict[str, str]:
        transport = httpx.MockTransport(provider_reply)
        hooks = llmobs_core.httpx_event_hooks()
        with (
            httpx.Client(transport=transport, event_hooks=hooks) as client,
            llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call,
        ):
            reply = client.post(OUTGOING_URL, json={"model": "gpt-4o-mini"})
            call.record(reply.json())
        return {"answer": reply.json()["choices"][0]["message"]["content"]}

    return app


def create_fastapi_app(*, observed: bool, response: object) -> FastAPI:
    app = FastAPI()
    if observed:
        app.add_middleware(LLMObsMiddleware, features=FEATURES)

    @app.post("/api/chat")
    async def chat() -> dict[str, str]:
        with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
            call.record(response)
        return {"answer": "ok"}

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in CHUNKS:
            yield chunk

    @app.post("/api/stream")
    async def stream() -> StreamingResponse:
        with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
            wrapped = call.wrap_stream(chunks())
        return StreamingResponse(wrapped, media_type="text/event-stream")

    @app.post("/api/budget", response_model=None)
    async def budget() -> JSONResponse | dict[str, str]:
        decision = llmobs_core.budget_decision()
        if decision.denied:
            return JSONResponse({"error": "budget exceeded"}, status_code=429)
        with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
            call.set_usage(input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS)
        return {"answer": "ok", "outcome": str(decision.outcome)}

    @app.post("/api/outgoing")
    async def outgoing() -> dict[str, str]:
        transport = httpx.MockTransport(provider_reply)
        hooks = llmobs_core.httpx_event_hooks(asynchronous=True)
        async with httpx.AsyncClient(transport=transport, event_hooks=hooks) as client:
            with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
                reply = await client.post(OUTGOING_URL, json={"model": "gpt-4o-mini"})
                call.record(reply.json())
        return {"answer": reply.json()["choices"][0]["message"]["content"]}

    return app


def serve_flask(path: str, *, observed: bool, response: object) -> Served:
    client = create_flask_app(observed=observed, response=response).test_client()
    with client.post(path, headers=REQUEST_HEADERS) as reply:
        return reply.status_code, comparable_headers(reply.headers), reply.get_data()


def serve_fastapi(path: str, *, observed: bool, response: object) -> Served:
    app = create_fastapi_app(observed=observed, response=response)

    async def post() -> httpx.Response:
        # Like a server, respond 500 to an exception that escapes the app.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway.test"
        ) as client:
            return await client.post(path, headers=REQUEST_HEADERS)

    reply = asyncio.run(post())
    return reply.status_code, comparable_headers(reply.headers), reply.content


SERVERS: dict[str, Callable[..., Served]] = {
    "flask": serve_flask,
    "fastapi": serve_fastapi,
}


def assert_same(actual: Served, expected: Served) -> None:
    # Without this, two equally broken responses would pass.
    assert expected[0] == 200
    assert expected[2]
    assert actual[0] == expected[0]
    assert actual[1] == expected[1]
    assert actual[2] == expected[2]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_hostile_record_keeps_response(observed: Observed, framework: str) -> None:
    serve = SERVERS[framework]
    hostile = HostileResponse()
    expected = serve("/api/chat", observed=False, response=RESPONSE)

    actual = serve("/api/chat", observed=True, response=hostile)

    assert_same(actual, expected)
    assert hostile.accesses, "record() never read the response object"
    assert len(observed.events) == 2


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    ("path", "fault"),
    [case[1:] for case in FAULT_CASES],
    ids=[case[0] for case in FAULT_CASES],
)
def test_fault_keeps_response(
    observed: Observed,
    monkeypatch: pytest.MonkeyPatch,
    framework: str,
    path: str,
    fault: Fault,
) -> None:
    serve = SERVERS[framework]
    expected = serve(path, observed=False, response=RESPONSE)
    raiser = fault(monkeypatch)

    actual = serve(path, observed=True, response=RESPONSE)

    assert_same(actual, expected)
    assert raiser.calls > 0
    assert len(observed.events) == 2


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    "path",
    ["/api/chat", "/api/stream", "/api/budget", "/api/outgoing"],
    ids=["plain", "stream", "budget", "outgoing"],
)
def test_raising_emitter_keeps_response(
    observed: Observed, framework: str, path: str
) -> None:
    serve = SERVERS[framework]
    expected = serve(path, observed=False, response=RESPONSE)
    configure_raising_emitter(observed.registry, observed.provider, TEST_HASH_KEY)

    actual = serve(path, observed=True, response=RESPONSE)

    assert_same(actual, expected)
    errors = observed.sample("llmobs_emitter_errors_total", emitter="raising")
    # The call start, the call event and the call_llm stage event each raise.
    assert errors is not None
    assert errors >= 3


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("outage", sorted(REDIS_OUTAGES))
def test_redis_outage_keeps_response(
    observed: Observed, framework: str, outage: str
) -> None:
    serve = SERVERS[framework]
    expected = serve("/api/budget", observed=False, response=RESPONSE)

    with REDIS_OUTAGES[outage]() as url:
        configure_redis_budget(url, observed.registry, observed.provider, TEST_HASH_KEY)
        actual = serve("/api/budget", observed=True, response=RESPONSE)

    assert_same(actual, expected)
    reads = observed.sample("llm_budget_store_errors_total", operation="read")
    writes = observed.sample("llm_budget_store_errors_total", operation="write")
    assert reads == 1
    assert writes == 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_outgoing_hook_failure_keeps_response(
    observed: Observed, monkeypatch: pytest.MonkeyPatch, framework: str
) -> None:
    serve = SERVERS[framework]
    expected = serve("/api/outgoing", observed=False, response=RESPONSE)
    raiser = raising_propagator(monkeypatch)

    actual = serve("/api/outgoing", observed=True, response=RESPONSE)

    assert_same(actual, expected)
    assert raiser.calls > 0
    errors = observed.sample("llmobs_emitter_errors_total", emitter="propagation")
    assert errors == raiser.calls
