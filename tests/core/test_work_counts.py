"""Guards against regressions in the work done per call, counted, not timed."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import llmobs_core
from llmobs_core import build_prompt, call_llm, feature, postprocess, retrieve_context
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


CHUNK = {
    "object": "chat.completion.chunk",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": "ok"}}],
}


def chunks() -> Iterator[dict[str, Any]]:
    yield from [CHUNK] * 3


async def async_chunks() -> AsyncIterator[dict[str, Any]]:
    for chunk in [CHUNK] * 3:
        yield chunk


def cyclic_garbage(run: Callable[[], None], count: int) -> int:
    """Return how many objects ``count`` runs left in reference cycles.

    Objects in a cycle outlive their last use until the garbage collector
    finds them. Made per call, they make it run more often and promote more
    objects to the older generations, whose collections scan the whole heap.
    With the collector off during the runs, the collection after them finds
    every such object.
    """
    run()
    assert llmobs_core.flush(timeout=10)
    gc.collect()
    gc.disable()
    try:
        for _ in range(count):
            run()
        assert llmobs_core.flush(timeout=10)
        return gc.collect()
    finally:
        gc.enable()


def call_with_everything() -> None:
    with call_llm(
        model="gpt-4o-mini",
        provider="openai",
        prompt=[{"role": "user", "content": "hi"}],
        prompt_template_id="t1",
        prompt_template="Answer {question}",
    ) as call:
        call.record(RESPONSE)
        call.add_retry("rate_limited")
        call.fallback_to("gpt-4o", "timeout")
        call.mark_cache_hit()


def consumed_stream() -> None:
    with call_llm(model="gpt-4o-mini", provider="openai", prompt="hi") as call:
        stream = call.wrap_stream(chunks())
    for _chunk in stream:
        pass


def closed_stream() -> None:
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        stream = call.wrap_stream(chunks())
    next(iter(stream))
    stream.close()


def async_stream() -> None:
    async def consume() -> None:
        async with call_llm(model="gpt-4o-mini", provider="openai") as call:
            stream = call.wrap_stream(async_chunks())
        async for _chunk in stream:
            pass

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(consume())
    finally:
        loop.close()


@call_llm(model="gpt-4o-mini", provider="openai")
def decorated_call() -> dict[str, Any]:
    return RESPONSE


def all_stages() -> None:
    with build_prompt(template="v2"), retrieve_context(), postprocess():
        pass


def in_request(run: Callable[[], None]) -> Callable[[], None]:
    def run_in_request() -> None:
        tokens = enter_request(RequestState(request_id="r1", tenant_tier="pro"))
        try:
            with feature("chat"):
                run()
        finally:
            exit_request(tokens)

    return run_in_request


@pytest.mark.parametrize(
    "run",
    [
        call_with_everything,
        consumed_stream,
        closed_stream,
        async_stream,
        decorated_call,
        all_stages,
        in_request(call_with_everything),
    ],
    ids=lambda run: run.__name__,
)
def test_calls_leave_no_reference_cycles(
    observed: Observed, run: Callable[[], None]
) -> None:
    runs = 300

    # One object per run would mean a cycle per call: a cycle has two or more.
    assert cyclic_garbage(run, runs) < runs
    assert len(observed.spans) >= runs


def asgi_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from llmobs_asgi import LLMObsMiddleware

    async def chat(request: Request) -> StreamingResponse:
        with build_prompt():
            pass
        with call_llm(model="gpt-4o-mini", provider="openai", prompt="hi") as call:
            stream = call.wrap_stream(async_chunks())

        async def body() -> AsyncIterator[str]:
            async for chunk in stream:
                yield chunk["choices"][0]["delta"]["content"]

        return StreamingResponse(body())

    app = Starlette(routes=[Route("/chat", chat)])
    return LLMObsMiddleware(app, features={"/chat": "chat"})


def test_asgi_requests_leave_no_reference_cycles(observed: Observed) -> None:
    app = asgi_app()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/chat",
        "raw_path": b"/chat",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"x-tenant-id", b"acme")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []
    received: list[int] = []

    async def receive() -> dict[str, Any]:
        # The body once, then nothing: the client stays connected.
        if received:
            await asyncio.get_running_loop().create_future()
        received.append(1)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    loop = asyncio.new_event_loop()

    def request() -> None:
        sent.clear()
        received.clear()
        loop.run_until_complete(app(dict(scope), receive, send))
        assert sent[0]["status"] == 200

    try:
        runs = 200
        garbage = cyclic_garbage(request, runs)
    finally:
        loop.close()

    assert garbage < runs
    assert observed.names().count("call_llm") == runs + 1


def flask_garbage(instrumented: bool) -> int:
    from flask import Flask

    from llmobs_flask import LLMObs

    app = Flask("cycles")

    @app.get("/chat")
    def chat() -> str:
        with call_llm(model="gpt-4o-mini", provider="openai", prompt="hi") as call:
            call.record(RESPONSE)
        return "ok"

    if instrumented:
        LLMObs(app, features={"/chat": "chat"})
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/chat",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> None:
        statuses.append(status)

    def request() -> None:
        body = app.wsgi_app({**environ, "wsgi.input": io.BytesIO()}, start_response)
        try:
            assert b"".join(body) == b"ok"
        finally:
            getattr(body, "close", lambda: None)()

    garbage = cyclic_garbage(request, 200)
    assert set(statuses) == {"200 OK"}
    return garbage


def test_flask_requests_add_no_reference_cycles(observed: Observed) -> None:
    # Flask leaves a few cyclic objects per request of its own; llmobs may
    # add none. One object per request is less than any cycle.
    bare = flask_garbage(instrumented=False)
    instrumented = flask_garbage(instrumented=True)

    assert instrumented - bare < 200
    assert observed.names().count("call_llm") == 2 * 201
