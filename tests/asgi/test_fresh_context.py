"""Each request starts from a clean context, whatever the task it runs on."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import llmobs_core as llmobs
from llmobs_asgi import LLMObsMiddleware
from llmobs_core.context import llmobs_bound, llmobs_feature, llmobs_request
from llmobs_core.emitters import JsonLogEmitter
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed


async def describe(request: Request) -> JSONResponse:
    with llmobs.call_llm(model="m"):
        pass
    context = llmobs.current_context()
    assert context is not None
    return JSONResponse(
        {
            "request_id": context.request_id,
            "trace_id": context.trace_id,
            "tenant_id": context.tenant_id,
            "feature_name": context.feature_name,
        }
    )


def build_app() -> LLMObsMiddleware:
    app = Starlette(routes=[Route("/describe", describe)])
    return LLMObsMiddleware(app, features={"/describe": "mapped"})


def test_keep_alive_requests_fresh(observed: Observed) -> None:
    with (
        run_uvicorn_in_thread(build_app()) as url,
        httpx.Client(base_url=url) as client,
    ):
        first = client.get("/describe", headers={"x-tenant-id": "acme"}).json()
        second = client.get("/describe").json()

    assert first["tenant_id"] == "acme"
    assert second["tenant_id"] is None
    assert second["request_id"] != first["request_id"]
    assert second["trace_id"] != first["trace_id"]


async def call_asgi(app: Any, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/describe",
        "raw_path": b"/describe",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body: dict[str, Any] = json.loads(sent[-1]["body"])
    return body


def test_request_started_inside_previous_request(observed: Observed) -> None:
    app = build_app()
    tracer = observed.provider.get_tracer("test")

    async def main() -> tuple[dict[str, Any], int]:
        previous = tracer.start_span("previous request")
        previous.end()
        token = otel_context.attach(trace.set_span_in_context(previous))
        llmobs.bind_context(tenant_id="previous-tenant")
        try:
            inner = await call_asgi(app, [(b"x-request-id", b"inner-1")])
        finally:
            otel_context.detach(token)
        return inner, previous.get_span_context().trace_id

    inner, previous_trace = asyncio.run(main())

    assert inner["tenant_id"] is None
    assert inner["request_id"] == "inner-1"
    assert inner["trace_id"] != f"{previous_trace:032x}"
    request_span = observed.span("GET /describe")
    assert request_span.parent is None


def test_ambient_context_restored_after_request(observed: Observed) -> None:
    app = build_app()

    async def main() -> tuple[object, ...]:
        before = (
            otel_context.get_current(),
            llmobs_request.get(),
            llmobs_feature.get(),
            llmobs_bound.get(),
        )
        await call_asgi(app, [(b"x-tenant-id", b"acme")])
        after = (
            otel_context.get_current(),
            llmobs_request.get(),
            llmobs_feature.get(),
            llmobs_bound.get(),
        )
        return before + after

    values = asyncio.run(main())

    assert values[:4] == values[4:]


def test_lifespan_shutdown_flushes_events(observed: Observed) -> None:
    class SlowHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            time.sleep(0.2)

    slow = logging.getLogger("test.slow.lifespan.events")
    slow.setLevel(logging.INFO)
    slow.propagate = False
    slow.addHandler(SlowHandler())
    llmobs.configure(emitters=[JsonLogEmitter(slow)], hash_key="k" * 32)
    app = build_app()
    sent: list[str] = []
    flushed_before_complete: list[bool] = []

    async def main() -> None:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                flushed_before_complete.append(llmobs.flush(timeout=0))
            sent.append(message["type"])

        for _ in range(3):
            with llmobs.call_llm(model="m"):
                pass
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(main())

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert flushed_before_complete == [True]


def test_lifespan_shutdown_ends_open_streams(observed: Observed) -> None:
    # A server that re-raises its stop signal skips atexit: the streamed
    # call still open in a background job is ended before shutdown completes.
    app = build_app()
    stream = None

    def chunks() -> Iterator[dict[str, Any]]:
        while True:
            yield {"object": "chat.completion.chunk", "choices": []}

    async def main() -> None:
        nonlocal stream
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            return None

        with llmobs.call_llm(model="background") as call:
            stream = call.wrap_stream(chunks())
        next(stream)
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(main())

    [event] = observed.events
    assert (event["model"], event["status"]) == ("background", "cancelled")
    assert observed.names() == ["call_llm"]
