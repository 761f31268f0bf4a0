from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator, default_getter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    NoOpTracerProvider,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse

import llmobs_core as llmobs
from llmobs_asgi import LLMObsMiddleware
from llmobs_core.privacy import PrivacyPolicy, sign_debug_token
from tests._servers import run_uvicorn_in_thread
from tests.conftest import TEST_HASH_KEY, Observed, span_times

USAGE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "usage": {"prompt_tokens": 50, "completion_tokens": 10},
}
STAGES = ("build_prompt", "retrieve_context", "call_llm", "postprocess")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


async def run_pipeline() -> dict[str, Any]:
    with llmobs.build_prompt():
        pass
    async with llmobs.retrieve_context():
        await asyncio.sleep(0.005)
    with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
        await asyncio.sleep(0.005)
        call.record(USAGE)
    with llmobs.postprocess():
        pass
    context = llmobs.current_context()
    assert context is not None
    return {"request_id": context.request_id, "tenant_id": context.tenant_id}


def build_app(**fastapi_options: Any) -> FastAPI:
    app = FastAPI(**fastapi_options)
    app.add_middleware(
        LLMObsMiddleware,
        features={"/api/chat/*": "chat.assistant"},
        excluded_paths=["/healthz"],
    )

    @app.post("/api/chat/{session}")
    async def chat(session: str) -> dict[str, Any]:
        return await run_pipeline()

    @app.post("/api/coach")
    @llmobs.feature("nutrition.coach")
    async def coach() -> dict[str, Any]:
        return await run_pipeline()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler failed")

    @app.get("/own-header")
    async def own_header() -> JSONResponse:
        return JSONResponse({}, headers={"x-request-id": "set-by-app"})

    return app


@pytest.fixture
def serve() -> Iterator[Callable[[Any], Any]]:
    """Return a function that starts an app under uvicorn and gives its URL."""
    stack: list[Any] = []

    def start(app: Any) -> str:
        server = run_uvicorn_in_thread(app)
        stack.append(server)
        return server.__enter__()

    yield start
    for server in reversed(stack):
        server.__exit__(None, None, None)


def wait_for(
    observed: Observed, predicate: Callable[[tuple[ReadableSpan, ...]], bool]
) -> tuple[ReadableSpan, ...]:
    """Poll the exporter: the server ends spans just after the client has the
    response, on its own thread."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = observed.spans
        if predicate(spans):
            return spans
        time.sleep(0.01)
    raise AssertionError(f"spans never matched; got {[s.name for s in observed.spans]}")


def server_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is SpanKind.SERVER]


def one_request_done(spans: tuple[ReadableSpan, ...]) -> bool:
    return any(span.name.startswith(("POST", "GET", "llmobs")) for span in spans)


def test_span_tree_and_ids(observed: Observed, serve: Callable[[Any], str]) -> None:
    url = serve(build_app())
    response = httpx.post(f"{url}/api/chat/s1", headers={"x-tenant-id": "acme"})
    spans = wait_for(observed, one_request_done)

    assert response.status_code == 200
    request_span = observed.span("POST /api/chat/{session}")
    assert request_span.kind is SpanKind.SERVER
    assert request_span.parent is None
    request_span_id = request_span.context.span_id
    for name in STAGES:
        stage = observed.span(name)
        assert stage.parent is not None
        assert stage.parent.span_id == request_span_id
        assert stage.context.trace_id == request_span.context.trace_id
    assert len(spans) == 5

    (event,) = observed.events
    call_span = observed.span("call_llm")
    assert event["trace_id"] == f"{call_span.context.trace_id:032x}"
    assert event["span_id"] == f"{call_span.context.span_id:016x}"
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["request_id"] == response.json()["request_id"]
    assert event["feature_name"] == "chat.assistant"
    assert event["tenant_id"] == "acme"


def test_request_span_attributes(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    response = httpx.post(f"{url}/api/coach", headers={"x-tenant-id": "acme"})
    wait_for(observed, one_request_done)

    attributes = dict(observed.span("POST /api/coach").attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/api/coach"
    assert attributes["url.path"] == "/api/coach"
    assert attributes["http.response.status_code"] == 200
    assert attributes["llmobs.request_id"] == response.headers["x-request-id"]
    assert attributes["llm.feature_name"] == "nutrition.coach"
    assert attributes["llmobs.tenant_id"] == "acme"


def test_stage_spans_inside_request_in_order(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    httpx.post(f"{url}/api/chat/s1")
    wait_for(observed, one_request_done)

    parent_start, parent_end = span_times(observed.span("POST /api/chat/{session}"))
    times = [span_times(observed.span(name)) for name in STAGES]
    for start, end in times:
        assert parent_start <= start
        assert end <= parent_end
    for (_, earlier_end), (later_start, _) in itertools.pairwise(times):
        assert earlier_end <= later_start


def test_feature_decorator_names_event(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    httpx.post(f"{url}/api/coach")
    wait_for(observed, one_request_done)

    assert observed.events[0]["feature_name"] == "nutrition.coach"


def test_metrics_after_n_requests(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    with httpx.Client(base_url=url) as client:
        for _ in range(7):
            client.post("/api/chat/s1")

    labels = {"feature_name": "chat.assistant", "model": "gpt-4o-mini"}
    assert observed.sample("llm_requests_total", status="ok", **labels) == 7
    assert observed.sample("llm_latency_ms_count", **labels) == 7
    assert observed.sample("llm_input_tokens_total", **labels) == 350
    assert observed.sample("llm_output_tokens_total", **labels) == 70
    stage_count = observed.sample(
        "llm_stage_duration_ms_count", feature_name="chat.assistant", stage="call_llm"
    )
    assert stage_count == 7


def test_fastapi_native_telemetry_one_server_span(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    app = build_app(telemetry={"tracer_provider": observed.provider})
    url = serve(app)
    response = httpx.post(f"{url}/api/chat/s1")
    spans = wait_for(
        observed,
        lambda spans: len(server_spans(spans)) == 1 and one_request_done(spans),
    )
    spans = wait_for(observed, lambda s: any(x.name.startswith("llmobs") for x in s))

    (outer,) = server_spans(spans)
    ours = observed.span("llmobs POST /api/chat/{session}")
    assert ours.kind is SpanKind.INTERNAL
    assert ours.parent is not None
    assert ours.parent.span_id == outer.context.span_id
    by_id = {span.context.span_id: span for span in spans}
    for name in STAGES:
        ancestors = []
        span: ReadableSpan | None = observed.span(name)
        while span is not None and span.parent is not None:
            span = by_id.get(span.parent.span_id)
            ancestors.append(span)
        assert ours in ancestors
    assert observed.events[0]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param("0123456789abcdef0123456789abcdef", id="nginx-hex"),
        pytest.param("F47AC10B-58CC-4372-A567-0E02B2C3D479", id="uuid4-upper"),
        pytest.param("018f8e8a-7c2b-7cde-9f00-1234567890ab", id="uuid7"),
        pytest.param("req_2024.01-A", id="opaque"),
        pytest.param("a" * 128, id="max-length"),
    ],
)
def test_request_id_valid_echoed(
    observed: Observed, serve: Callable[[Any], str], request_id: str
) -> None:
    url = serve(build_app())
    response = httpx.post(f"{url}/api/chat/s1", headers={"x-request-id": request_id})

    assert response.headers.get_list("x-request-id") == [request_id]
    assert response.json()["request_id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param("a" * 129, id="too-long"),
        pytest.param("id with spaces", id="spaces"),
        pytest.param("id;drop", id="semicolon"),
        pytest.param("", id="empty"),
    ],
)
def test_request_id_invalid_replaced(
    observed: Observed, serve: Callable[[Any], str], request_id: str
) -> None:
    url = serve(build_app())
    response = httpx.post(f"{url}/api/chat/s1", headers={"x-request-id": request_id})

    echoed = response.headers.get_list("x-request-id")
    assert len(echoed) == 1
    assert echoed[0] != request_id
    assert len(echoed[0]) == 32
    int(echoed[0], 16)


def test_request_id_header_replaces_apps(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    response = httpx.get(f"{url}/own-header", headers={"x-request-id": "from-client"})

    assert response.headers.get_list("x-request-id") == ["from-client"]


def test_traceparent_continues_trace(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    httpx.post(f"{url}/api/chat/s1", headers={"traceparent": traceparent})
    wait_for(observed, one_request_done)

    request_span = observed.span("POST /api/chat/{session}")
    assert f"{request_span.context.trace_id:032x}" == TRACE_ID
    assert request_span.parent is not None
    assert f"{request_span.parent.span_id:016x}" == PARENT_ID
    assert observed.events[0]["trace_id"] == TRACE_ID


class PrefixedPropagator(TextMapPropagator):
    """Reads ``x-trace-<trace id>`` header names, as prefix-based propagators do.

    Its ``fields`` cannot list such names, so the middleware must pass it
    every header.
    """

    def extract(
        self, carrier: Any, context: Any = None, getter: Any = default_getter
    ) -> Any:
        for key in getter.keys(carrier):
            if key.startswith("x-trace-"):
                span_context = SpanContext(
                    trace_id=int(key.removeprefix("x-trace-"), 16),
                    span_id=int(PARENT_ID, 16),
                    is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
                return set_span_in_context(NonRecordingSpan(span_context), context)
        return context if context is not None else Context()

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        """Add nothing: the test reads incoming headers only."""

    @property
    def fields(self) -> set[str]:
        return set()


def test_prefixed_propagator_gets_every_header(
    observed: Observed, serve: Callable[[Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", PrefixedPropagator())
    url = serve(build_app())
    httpx.post(f"{url}/api/chat/s1", headers={f"x-trace-{TRACE_ID}": "1"})
    wait_for(observed, one_request_done)

    request_span = observed.span("POST /api/chat/{session}")
    assert f"{request_span.context.trace_id:032x}" == TRACE_ID


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            [("traceparent", f"ff-{TRACE_ID}-{PARENT_ID}-01")], id="version-ff"
        ),
        pytest.param(
            [("traceparent", f"00-{TRACE_ID.upper()}-{PARENT_ID}-01")], id="uppercase"
        ),
        pytest.param(
            [("traceparent", f"00-{'0' * 32}-{PARENT_ID}-01")], id="zero-trace"
        ),
        pytest.param(
            [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01-extra")],
            id="v00-trailing-data",
        ),
        pytest.param(
            [
                ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
                ("traceparent", f"00-{'1' * 32}-{PARENT_ID}-01"),
            ],
            id="duplicated",
        ),
    ],
)
def test_traceparent_invalid_starts_new_trace(
    observed: Observed, serve: Callable[[Any], str], headers: list[tuple[str, str]]
) -> None:
    url = serve(build_app())
    httpx.post(f"{url}/api/chat/s1", headers=headers)
    wait_for(observed, one_request_done)

    request_span = observed.span("POST /api/chat/{session}")
    assert request_span.parent is None
    assert f"{request_span.context.trace_id:032x}" != TRACE_ID


def test_traceparent_future_version_accepted(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    headers = {"traceparent": f"01-{TRACE_ID}-{PARENT_ID}-01-future-field"}
    httpx.post(f"{url}/api/chat/s1", headers=headers)
    wait_for(observed, one_request_done)

    request_span = observed.span("POST /api/chat/{session}")
    assert f"{request_span.context.trace_id:032x}" == TRACE_ID


def test_exception_gives_500_span(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    response = httpx.get(f"{url}/boom")
    wait_for(observed, one_request_done)

    assert response.status_code == 500
    span = observed.span("GET /boom")
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 500
    assert attributes["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_client_error_leaves_status_unset(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    response = httpx.get(f"{url}/missing")
    wait_for(observed, one_request_done)

    assert response.status_code == 404
    (span,) = observed.spans
    assert span.name == "GET"
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})["http.response.status_code"] == 404


def test_excluded_path_untouched(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    response = httpx.get(f"{url}/healthz", headers={"x-request-id": "probe"})

    assert response.status_code == 200
    assert "x-request-id" not in response.headers
    assert observed.spans == ()


def test_middleware_twice_one_span(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    app = build_app()
    app.add_middleware(LLMObsMiddleware)
    url = serve(app)
    response = httpx.post(f"{url}/api/chat/s1")
    spans = wait_for(observed, one_request_done)

    assert response.headers.get_list("x-request-id") == [response.json()["request_id"]]
    assert len(server_spans(spans)) == 1
    assert len([s for s in spans if "api/chat" in s.name]) == 1


def test_lifespan_passes_through(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    started: list[str] = []

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append("startup")
        yield

    app = FastAPI(lifespan=lifespan)  # type: ignore[arg-type]
    app.add_middleware(LLMObsMiddleware)
    serve(app)

    assert started == ["startup"]
    assert observed.spans == ()


def test_streamed_response_timed_to_last_chunk(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    app = FastAPI()
    app.add_middleware(LLMObsMiddleware, features={"/stream": "chat.stream"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            with llmobs.call_llm(model="gpt-4o-mini") as call:
                for index in range(4):
                    await asyncio.sleep(0.02)
                    call.record_chunk({"object": "chat.completion.chunk"})
                    yield f"data: {index}\n\n"
                call.set_usage(input_tokens=5, output_tokens=4)

        return StreamingResponse(chunks(), media_type="text/event-stream")

    url = serve(app)
    body = httpx.get(f"{url}/stream").text
    wait_for(observed, one_request_done)

    assert body.count("data:") == 4
    request_span = observed.span("GET /stream")
    call_span = observed.span("call_llm")
    assert span_times(call_span)[1] <= span_times(request_span)[1]
    assert call_span.parent is not None
    assert call_span.parent.span_id == request_span.context.span_id
    event = observed.events[0]
    assert event["streaming"] is True
    assert event["status"] == "ok"
    assert event["output_tokens"] == 4
    assert event["feature_name"] == "chat.stream"


def test_background_task_not_timed(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    started_ns: list[int] = []

    async def background() -> None:
        started_ns.append(time.time_ns())
        await asyncio.sleep(0.05)

    app = FastAPI()
    app.add_middleware(LLMObsMiddleware)

    @app.get("/with-task")
    async def with_task() -> JSONResponse:
        return JSONResponse({}, background=BackgroundTask(background))

    url = serve(app)
    httpx.get(f"{url}/with-task")
    wait_for(observed, one_request_done)
    deadline = time.monotonic() + 5
    while not started_ns and time.monotonic() < deadline:
        time.sleep(0.01)

    span = observed.span("GET /with-task")
    assert span.end_time is not None
    assert span.end_time <= started_ns[0]


def test_client_disconnect_not_server_error(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    app = FastAPI()
    app.add_middleware(LLMObsMiddleware)

    @app.get("/endless")
    async def endless(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(500):
                yield b"data: tick\n\n"
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/event-stream")

    url = serve(app)
    with httpx.Client() as client, client.stream("GET", f"{url}/endless") as response:
        next(response.iter_bytes())
    wait_for(observed, one_request_done)

    span = observed.span("GET /endless")
    attributes = dict(span.attributes or {})
    assert attributes["llmobs.client_closed"] is True
    assert span.status.status_code is not StatusCode.ERROR


def test_send_oserror_marks_client_closed(observed: Observed) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset by peer")
        sent.append(message["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/gone",
        "headers": [],
        "scheme": "http",
        "root_path": "",
    }
    with pytest.raises(OSError, match="connection reset"):
        asyncio.run(LLMObsMiddleware(app)(scope, receive, send))

    (span,) = observed.spans
    attributes = dict(span.attributes or {})
    assert sent == ["http.response.start"]
    assert attributes["llmobs.client_closed"] is True
    assert attributes["http.response.status_code"] == 200
    assert span.status.status_code is not StatusCode.ERROR


def test_concurrent_tenants_isolated(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())

    async def one(client: httpx.AsyncClient, index: int) -> tuple[str, httpx.Response]:
        tenant = f"tenant-{index}"
        response = await client.post("/api/chat/s", headers={"x-tenant-id": tenant})
        return tenant, response

    async def main() -> list[tuple[str, httpx.Response]]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    results = asyncio.run(main())
    wait_for(observed, lambda spans: len(server_spans(spans)) == 50)

    for tenant, response in results:
        assert response.json()["tenant_id"] == tenant
    events = {event["request_id"]: event for event in observed.events}
    assert len(events) == 50
    for tenant, response in results:
        assert events[response.headers["x-request-id"]]["tenant_id"] == tenant
    trace_ids = {event["trace_id"] for event in observed.events}
    assert len(trace_ids) == 50


def test_user_id_stored_as_keyed_hash(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    httpx.post(f"{url}/api/chat/s1", headers={"x-user-id": "alice@example.com"})
    wait_for(observed, one_request_done)

    expected = hmac.new(
        TEST_HASH_KEY.encode(), b"alice@example.com", hashlib.sha256
    ).hexdigest()
    assert observed.events[0]["user_id_hash"] == expected
    assert "alice" not in observed.capture.lines[0]
    for span in observed.spans:
        assert "alice" not in json.dumps(dict(span.attributes or {}))


def test_request_headers_fill_context(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    headers = {
        "x-tenant-id": "acme",
        "x-tenant-tier": "enterprise",
        "x-session-id": "sess-1",
        "x-platform": "ios",
        "x-app-version": "5.2.0",
        "x-region": "eu-west-1",
    }
    httpx.post(f"{url}/api/chat/s1", headers=headers)
    wait_for(observed, one_request_done)

    event = observed.events[0]
    assert event["tenant_id"] == "acme"
    assert event["tenant_tier"] == "enterprise"
    assert event["session_id"] == "sess-1"
    assert event["platform"] == "ios"
    assert event["app_version"] == "5.2.0"
    assert event["region"] == "eu-west-1"


def test_no_sdk_keeps_incoming_trace_id(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    llmobs.configure(
        tracer_provider=NoOpTracerProvider(),
        registry=observed.registry,
        hash_key=TEST_HASH_KEY,
    )
    url = serve(build_app())
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = httpx.post(f"{url}/api/chat/s1", headers={"traceparent": traceparent})
    no_header = httpx.post(f"{url}/api/chat/s1")

    first, second = observed.events
    assert first["trace_id"] == TRACE_ID
    assert first["span_id"] != PARENT_ID
    assert first["request_id"] == response.headers["x-request-id"]
    assert second["trace_id"] != TRACE_ID
    assert second["request_id"] == no_header.headers["x-request-id"]
    assert observed.spans == ()
    labels = {"feature_name": "chat.assistant", "model": "gpt-4o-mini"}
    assert observed.sample("llm_requests_total", status="ok", **labels) == 2


def test_asgi2_app_wrapped(observed: Observed, serve: Callable[[Any], str]) -> None:
    class LegacyApp:
        """An ASGI 2 (double-callable) app."""

        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    url = serve(LLMObsMiddleware(LegacyApp))
    response = httpx.get(f"{url}/legacy")
    wait_for(observed, one_request_done)

    assert response.status_code == 204
    assert len(response.headers["x-request-id"]) == 32
    (span,) = observed.spans
    assert dict(span.attributes or {})["http.response.status_code"] == 204


@pytest.mark.parametrize(
    ("headers", "dropped"),
    [
        pytest.param(
            {"traceparent": "0" * 20_000, "tracestate": "a=1"},
            ["traceparent"],
            id="huge-traceparent",
        ),
        pytest.param(
            {
                "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
                "tracestate": ",".join(f"k{i}=v" for i in range(40)),
            },
            ["tracestate"],
            id="too-many-members",
        ),
        pytest.param(
            {
                "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
                "tracestate": "!!!garbage===,@@",
            },
            ["tracestate"],
            id="garbage-tracestate",
        ),
    ],
)
def test_hostile_trace_headers_quiet(
    observed: Observed,
    serve: Callable[[Any], str],
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    dropped: list[str],
) -> None:
    url = serve(build_app())
    with caplog.at_level(logging.WARNING):
        response = httpx.post(f"{url}/api/chat/s1", headers=headers)
        wait_for(observed, one_request_done)

    assert response.status_code == 200
    assert [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    ] == []
    for header in ("traceparent", "tracestate"):
        count = observed.sample("llmobs_invalid_request_headers_total", header=header)
        assert (count or 0) == (1 if header in dropped else 0)


def test_valid_tracestate_propagated(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    headers = {
        "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
        "tracestate": "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
    }
    httpx.post(f"{url}/api/chat/s1", headers=headers)
    wait_for(observed, one_request_done)

    span = observed.span("POST /api/chat/{session}")
    assert (
        span.context.trace_state.to_header()
        == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    )


def test_utf8_header_values_decoded(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    url = serve(build_app())
    tenant = "Zürich-東京"
    httpx.post(f"{url}/api/chat/s1", headers=[("x-tenant-id", tenant.encode("utf-8"))])
    wait_for(observed, one_request_done)

    assert observed.events[0]["tenant_id"] == tenant


def test_long_header_value_cut(observed: Observed, serve: Callable[[Any], str]) -> None:
    url = serve(build_app())
    httpx.post(f"{url}/api/chat/s1", headers={"x-tenant-id": "t" * 5000})
    wait_for(observed, one_request_done)

    assert observed.events[0]["tenant_id"] == "t" * 256


def test_region_default_and_header(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    app = FastAPI()
    app.add_middleware(LLMObsMiddleware, region="eu-central-1")

    @app.get("/call")
    async def call() -> dict[str, str]:
        with llmobs.call_llm(model="m"):
            pass
        return {}

    url = serve(app)
    httpx.get(f"{url}/call")
    httpx.get(f"{url}/call", headers={"x-region": "us-east-1"})

    assert [event["region"] for event in observed.events] == [
        "eu-central-1",
        "us-east-1",
    ]


def configure_privacy(observed: Observed, **policy: Any) -> None:
    llmobs.configure(
        tracer_provider=observed.provider,
        registry=observed.registry,
        privacy=PrivacyPolicy(hash_key=TEST_HASH_KEY, **policy),
    )


def test_debug_tenant_gets_full_content(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    configure_privacy(observed, debug_tenants=["acme-debug"])
    url = serve(build_prompt_app())
    httpx.post(f"{url}/ask", headers={"x-tenant-id": "acme-debug"})
    httpx.post(f"{url}/ask", headers={"x-tenant-id": "acme"})

    debug, normal = observed.events
    assert debug["capture_mode"] == "full"
    assert debug["input_content"] == "my email is jane@example.com"
    assert normal["capture_mode"] == "none"
    assert normal["input_content"] is None


def test_signed_debug_token_gets_full_content(
    observed: Observed, serve: Callable[[Any], str]
) -> None:
    configure_privacy(observed)
    url = serve(build_prompt_app())
    token = sign_debug_token(TEST_HASH_KEY, ttl_seconds=60)
    httpx.post(f"{url}/ask", headers={"x-llmobs-debug": token})
    httpx.post(f"{url}/ask", headers={"x-llmobs-debug": token})

    first, replayed = observed.events
    assert first["capture_mode"] == "full"
    assert replayed["capture_mode"] == "none"
    assert observed.sample("llmobs_debug_tokens_rejected_total", reason="replayed") == 1


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param("please-debug-me", "malformed", id="unsigned"),
        pytest.param(
            sign_debug_token("another-key-0123456789", ttl_seconds=60),
            "bad_signature",
            id="forged",
        ),
        pytest.param(
            sign_debug_token(TEST_HASH_KEY, ttl_seconds=60, now=1_000_000),
            "expired",
            id="expired",
        ),
    ],
)
def test_bad_debug_token_ignored_and_counted(
    observed: Observed, serve: Callable[[Any], str], token: str, reason: str
) -> None:
    configure_privacy(observed)
    url = serve(build_prompt_app())
    response = httpx.post(f"{url}/ask", headers={"x-llmobs-debug": token})

    assert response.status_code == 200
    assert observed.events[0]["capture_mode"] == "none"
    assert observed.sample("llmobs_debug_tokens_rejected_total", reason=reason) == 1


def build_prompt_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(LLMObsMiddleware)

    @app.post("/ask")
    async def ask() -> dict[str, str]:
        with llmobs.call_llm(
            model="gpt-4o-mini", prompt="my email is jane@example.com"
        ):
            pass
        return {}

    return app
