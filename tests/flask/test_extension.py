"""The Flask extension and WSGI middleware, called through the WSGI callable."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask, Response, jsonify, stream_with_context
from flask.testing import FlaskClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.test import Client

import llmobs_core as llmobs
from llmobs_core.context import ContextThreadPoolExecutor, run_in_context
from llmobs_flask import LLMObs, LLMObsWSGIMiddleware, metrics_view
from tests.conftest import Observed, span_times

USAGE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "usage": {"prompt_tokens": 50, "completion_tokens": 10},
}
STAGES = ("build_prompt", "retrieve_context", "call_llm", "postprocess")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
CHAT_ROUTE_SPAN = "POST /api/chat/<session>"


def run_pipeline() -> dict[str, Any]:
    with llmobs.build_prompt():
        pass
    with llmobs.retrieve_context():
        time.sleep(0.005)
    with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
        time.sleep(0.005)
        call.record(USAGE)
    with llmobs.postprocess():
        pass
    return context_body()


async def run_pipeline_async() -> dict[str, Any]:
    with llmobs.build_prompt():
        pass
    async with llmobs.retrieve_context():
        await asyncio.sleep(0.005)
    with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
        await asyncio.sleep(0.005)
        call.record(USAGE)
    with llmobs.postprocess():
        pass
    return context_body()


def context_body() -> dict[str, Any]:
    context = llmobs.current_context()
    assert context is not None
    return {
        "request_id": context.request_id,
        "tenant_id": context.tenant_id,
        "tenant_tier": context.tenant_tier,
    }


def new_extension() -> LLMObs:
    return LLMObs(
        features={"/api/chat/*": "chat.assistant"},
        excluded_paths=["/healthz", "/metrics"],
    )


def build_app(extension: LLMObs | None = None) -> Flask:
    app = Flask(__name__)
    (extension or new_extension()).init_app(app)

    @app.post("/api/chat/<session>")
    def chat(session: str) -> dict[str, Any]:
        return run_pipeline()

    @app.post("/api/coach")
    @llmobs.feature("nutrition.coach")
    def coach() -> dict[str, Any]:
        return run_pipeline()

    @app.post("/api/async-coach")
    @llmobs.feature("nutrition.coach")
    async def async_coach() -> dict[str, Any]:
        return await run_pipeline_async()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    def boom() -> Response:
        raise RuntimeError("handler failed")

    @app.get("/own-header")
    def own_header() -> Response:
        response = jsonify({})
        response.headers["X-Request-ID"] = "set-by-app"
        return response

    @app.get("/context")
    def context() -> dict[str, Any]:
        return context_body()

    return app


@pytest.fixture
def app(observed: Observed) -> Flask:
    return build_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, path: str, **kwargs: Any) -> Any:
    # buffered=True reads the body and calls close() before returning, as a
    # WSGI server does, so the request span and context are finished.
    return client.post(path, buffered=True, **kwargs)


def get(client: FlaskClient, path: str, **kwargs: Any) -> Any:
    return client.get(path, buffered=True, **kwargs)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_span_tree_and_ids(observed: Observed, client: FlaskClient) -> None:
    response = post(client, "/api/chat/s1", headers={"x-tenant-id": "acme"})

    assert response.status_code == 200
    request_span = observed.span(CHAT_ROUTE_SPAN)
    assert request_span.kind is SpanKind.SERVER
    assert request_span.parent is None
    for name in STAGES:
        stage = observed.span(name)
        assert parent_id(stage) == request_span.context.span_id
        assert stage.context.trace_id == request_span.context.trace_id
    assert len(observed.spans) == 5

    (event,) = observed.events
    call_span = observed.span("call_llm")
    assert event["trace_id"] == f"{call_span.context.trace_id:032x}"
    assert event["span_id"] == f"{call_span.context.span_id:016x}"
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["request_id"] == response.json["request_id"]
    assert event["feature_name"] == "chat.assistant"
    assert event["tenant_id"] == "acme"


def test_call_span_attributes(observed: Observed, client: FlaskClient) -> None:
    post(client, "/api/chat/s1")

    attributes = dict(observed.span("call_llm").attributes or {})
    assert attributes["llm.feature_name"] == "chat.assistant"
    assert attributes["llm.model"] == "gpt-4o-mini"
    assert attributes["llm.provider"] == "openai"
    assert attributes["llm.input_tokens"] == 50
    assert attributes["llm.output_tokens"] == 10
    assert attributes["llm.status"] == "ok"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"


def test_request_span_attributes(observed: Observed, client: FlaskClient) -> None:
    response = post(client, "/api/coach", headers={"x-tenant-id": "acme"})

    attributes = dict(observed.span("POST /api/coach").attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/api/coach"
    assert attributes["url.path"] == "/api/coach"
    assert attributes["http.response.status_code"] == 200
    assert attributes["llmobs.request_id"] == response.headers["x-request-id"]
    assert attributes["llm.feature_name"] == "nutrition.coach"
    assert attributes["llmobs.tenant_id"] == "acme"


def test_stage_spans_inside_request_in_order(
    observed: Observed, client: FlaskClient
) -> None:
    post(client, "/api/chat/s1")

    parent_start, parent_end = span_times(observed.span(CHAT_ROUTE_SPAN))
    times = [span_times(observed.span(name)) for name in STAGES]
    for start, end in times:
        assert parent_start <= start
        assert end <= parent_end
    for (_, earlier_end), (later_start, _) in itertools.pairwise(times):
        assert earlier_end <= later_start


def test_feature_decorator_names_event(observed: Observed, client: FlaskClient) -> None:
    post(client, "/api/coach")

    assert observed.events[0]["feature_name"] == "nutrition.coach"


def test_async_view_with_feature(observed: Observed, client: FlaskClient) -> None:
    response = post(client, "/api/async-coach", headers={"x-tenant-id": "acme"})

    assert response.status_code == 200
    request_span = observed.span("POST /api/async-coach")
    request_attributes = dict(request_span.attributes or {})
    assert request_attributes["llm.feature_name"] == "nutrition.coach"
    for name in STAGES:
        assert parent_id(observed.span(name)) == request_span.context.span_id
    (event,) = observed.events
    assert event["feature_name"] == "nutrition.coach"
    assert event["tenant_id"] == "acme"
    assert event["request_id"] == response.headers["x-request-id"]
    assert response.json["request_id"] == response.headers["x-request-id"]


def test_request_headers_fill_context(observed: Observed, client: FlaskClient) -> None:
    headers = {
        "x-tenant-id": "acme",
        "x-tenant-tier": "enterprise",
        "x-session-id": "sess-1",
        "x-platform": "ios",
        "x-app-version": "5.2.0",
        "x-region": "eu-west-1",
    }
    post(client, "/api/chat/s1", headers=headers)

    event = observed.events[0]
    assert event["tenant_id"] == "acme"
    assert event["tenant_tier"] == "enterprise"
    assert event["session_id"] == "sess-1"
    assert event["platform"] == "ios"
    assert event["app_version"] == "5.2.0"
    assert event["region"] == "eu-west-1"


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
    observed: Observed, client: FlaskClient, request_id: str
) -> None:
    response = post(client, "/api/chat/s1", headers={"x-request-id": request_id})

    assert response.headers.getlist("x-request-id") == [request_id]
    assert response.json["request_id"] == request_id


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
    observed: Observed, client: FlaskClient, request_id: str
) -> None:
    response = post(client, "/api/chat/s1", headers={"x-request-id": request_id})

    echoed = response.headers.getlist("x-request-id")
    assert len(echoed) == 1
    assert echoed[0] != request_id
    assert len(echoed[0]) == 32
    int(echoed[0], 16)
    assert response.json["request_id"] == echoed[0]


def test_request_id_header_replaces_apps(
    observed: Observed, client: FlaskClient
) -> None:
    response = get(client, "/own-header", headers={"x-request-id": "from-client"})

    assert response.headers.getlist("x-request-id") == ["from-client"]


def test_traceparent_continues_trace(observed: Observed, client: FlaskClient) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    post(client, "/api/chat/s1", headers={"traceparent": traceparent})

    request_span = observed.span(CHAT_ROUTE_SPAN)
    assert f"{request_span.context.trace_id:032x}" == TRACE_ID
    assert request_span.parent is not None
    assert f"{request_span.parent.span_id:016x}" == PARENT_ID
    assert request_span.parent.is_remote is True
    assert observed.events[0]["trace_id"] == TRACE_ID


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
    observed: Observed, client: FlaskClient, headers: list[tuple[str, str]]
) -> None:
    post(client, "/api/chat/s1", headers=headers)

    request_span = observed.span(CHAT_ROUTE_SPAN)
    assert request_span.parent is None
    assert f"{request_span.context.trace_id:032x}" != TRACE_ID
    assert f"{request_span.context.trace_id:032x}" != "1" * 32
    assert observed.events[0]["trace_id"] == f"{request_span.context.trace_id:032x}"


def test_traceparent_future_version_accepted(
    observed: Observed, client: FlaskClient
) -> None:
    headers = {"traceparent": f"01-{TRACE_ID}-{PARENT_ID}-01-future-field"}
    post(client, "/api/chat/s1", headers=headers)

    request_span = observed.span(CHAT_ROUTE_SPAN)
    assert f"{request_span.context.trace_id:032x}" == TRACE_ID


def test_exception_gives_500_span(observed: Observed, client: FlaskClient) -> None:
    response = get(client, "/boom")

    assert response.status_code == 500
    span = observed.span("GET /boom")
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 500
    assert attributes["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    exception_attributes = dict(span.events[0].attributes or {})
    assert exception_attributes["exception.type"] == "RuntimeError"
    # The message can quote user input, so it is not recorded.
    assert "exception.message" not in exception_attributes


def test_client_error_leaves_status_unset(
    observed: Observed, client: FlaskClient
) -> None:
    response = get(client, "/missing")

    assert response.status_code == 404
    (span,) = observed.spans
    assert span.name == "GET"
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})["http.response.status_code"] == 404


def test_excluded_path_untouched(observed: Observed, client: FlaskClient) -> None:
    response = get(client, "/healthz", headers={"x-request-id": "probe"})

    assert response.status_code == 200
    assert "x-request-id" not in response.headers
    assert observed.spans == ()


def test_metrics_view_serves_registry(
    observed: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    app = Flask(__name__)
    new_extension().init_app(app)
    app.add_url_rule("/metrics", view_func=metrics_view(observed.registry))
    app.add_url_rule("/api/chat/s1", "chat", run_pipeline, methods=["POST"])
    client = app.test_client()
    post(client, "/api/chat/s1")

    response = get(client, "/metrics")

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    expected = (
        'llm_requests_total{feature_name="chat.assistant",model="gpt-4o-mini",'
        'region="unknown",status="ok"} 1.0'
    )
    assert expected in response.text.splitlines()
    assert "x-request-id" not in response.headers
    assert len(observed.spans) == 5


def stream_app(chunk_times: list[int], yielded: list[int]) -> Flask:
    """Build an app whose SSE views record when and how many chunks they made."""
    app = Flask(__name__)
    LLMObs(app, features={"/*stream": "chat.stream", "/endless": "chat.stream"})

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            with llmobs.call_llm(
                model="gpt-4o-mini", provider="openai", streaming=True
            ) as call:
                for index in range(4):
                    time.sleep(0.02)
                    call.record_chunk({"object": "chat.completion.chunk"})
                    chunk_times.append(time.time_ns())
                    yield f"data: {index}\n\n"
                call.set_usage(input_tokens=5, output_tokens=4)
            with llmobs.postprocess():
                yield "event: done\ndata: {}\n\n"
            chunk_times.append(time.time_ns())

        return Response(stream_with_context(chunks()), mimetype="text/event-stream")

    @app.get("/endless")
    def endless() -> Response:
        def chunks() -> Iterator[str]:
            with llmobs.call_llm(
                model="gpt-4o-mini", provider="openai", streaming=True
            ) as call:
                call.set_usage(input_tokens=12)
                for index in range(100):
                    call.record_chunk({"object": "chat.completion.chunk"})
                    call.set_usage(output_tokens=index + 1)
                    yielded.append(index)
                    yield f"data: {index}\n\n"

        return Response(stream_with_context(chunks()), mimetype="text/event-stream")

    @app.get("/plain-stream")
    def plain_stream() -> Response:
        def chunks() -> Iterator[str]:
            with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
                call.set_usage(input_tokens=3, output_tokens=1)
                yield f"data: {context_body()['request_id']}\n\n"

        return Response(chunks(), mimetype="text/event-stream")

    return app


def test_plain_generator_sees_request(observed: Observed) -> None:
    client = stream_app([], []).test_client()

    response = get(client, "/plain-stream")

    request_id = response.headers["x-request-id"]
    assert response.text == f"data: {request_id}\n\n"
    request_span = observed.span("GET /plain-stream")
    assert parent_id(observed.span("call_llm")) == request_span.context.span_id
    (event,) = observed.events
    assert event["request_id"] == request_id
    assert event["feature_name"] == "chat.stream"


def test_stream_span_covers_last_chunk(observed: Observed) -> None:
    chunk_times: list[int] = []
    client = stream_app(chunk_times, []).test_client()

    response = get(client, "/stream")

    assert response.status_code == 200
    assert response.text.count("data:") == 5
    request_span = observed.span("GET /stream")
    _, request_end = span_times(request_span)
    assert request_end >= chunk_times[-1]
    for name in ("call_llm", "postprocess"):
        assert parent_id(observed.span(name)) == request_span.context.span_id
    (event,) = observed.events
    assert event["streaming"] is True
    assert event["status"] == "ok"
    assert event["output_tokens"] == 4
    assert event["feature_name"] == "chat.stream"
    assert event["request_id"] == response.headers["x-request-id"]


def test_stream_closed_early_cancels_call(observed: Observed) -> None:
    yielded: list[int] = []
    client = stream_app([], yielded).test_client()

    response = client.get("/endless", buffered=False)
    first = next(iter(response.response))
    response.close()

    assert first == b"data: 0\n\n"
    assert len(yielded) < 100
    span = observed.span("GET /endless")
    attributes = dict(span.attributes or {})
    assert attributes["llmobs.client_closed"] is True
    assert span.status.status_code is not StatusCode.ERROR
    (event,) = observed.events
    assert event["status"] == "cancelled"
    assert event["input_tokens"] == 12
    assert event["output_tokens"] == len(yielded)
    call_span = observed.span("call_llm")
    assert parent_id(call_span) == span.context.span_id
    in_flight = observed.sample(
        "llm_calls_in_flight", feature_name="chat.stream", model="gpt-4o-mini"
    )
    assert in_flight == 0


def test_two_apps_share_extension(observed: Observed) -> None:
    extension = new_extension()
    first = Flask("first")
    second = Flask("second")
    extension.init_app(first)
    extension.init_app(second)
    first.add_url_rule(
        "/api/chat/<a>", "chat", lambda a: run_pipeline(), methods=["POST"]
    )
    second.add_url_rule("/b/<b>", "b", lambda b: context_body())

    first_response = post(first.test_client(), "/api/chat/x")
    second_response = get(second.test_client(), "/b/y")

    assert first.extensions["llmobs"] is extension
    assert second.extensions["llmobs"] is extension
    first_span = observed.span("POST /api/chat/<a>")
    second_span = observed.span("GET /b/<b>")
    assert dict(first_span.attributes or {})["http.route"] == "/api/chat/<a>"
    assert dict(second_span.attributes or {})["http.route"] == "/b/<b>"
    assert first_response.json["request_id"] == first_response.headers["x-request-id"]
    assert second_response.json["request_id"] == second_response.headers["x-request-id"]
    assert first_span.context.trace_id != second_span.context.trace_id


def test_init_app_twice_raises(observed: Observed) -> None:
    app = Flask(__name__)
    extension = new_extension()
    extension.init_app(app)

    with pytest.raises(RuntimeError, match="already installed"):
        extension.init_app(app)
    with pytest.raises(RuntimeError, match="already installed"):
        LLMObs(app)


def test_context_cleared_between_requests(
    observed: Observed, client: FlaskClient, app: Flask
) -> None:
    @app.get("/bind")
    def bind() -> dict[str, Any]:
        llmobs.bind_context(tenant_tier="enterprise")
        return context_body()

    first = get(client, "/bind", headers={"x-tenant-id": "acme"})
    second = get(client, "/context")

    assert first.json["tenant_id"] == "acme"
    assert first.json["tenant_tier"] == "enterprise"
    assert second.json["tenant_id"] is None
    assert second.json["tenant_tier"] is None
    assert second.json["request_id"] != first.json["request_id"]
    assert llmobs.current_context() is None
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_thread_pool_stages_in_request(
    observed: Observed, client: FlaskClient, app: Flask
) -> None:
    def lookup(source: str) -> str:
        with llmobs.retrieve_context(source=source):
            time.sleep(0.005)
        return source

    def call() -> None:
        with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as handle:
            handle.record(USAGE)

    @app.post("/api/chat/pool")
    def pool() -> dict[str, Any]:
        with ContextThreadPoolExecutor(max_workers=2) as executor:
            sources = list(executor.map(lookup, ["docs", "tickets"]))
            executor.submit(call).result()
        return {"sources": sources, **context_body()}

    response = post(client, "/api/chat/pool")

    assert response.json["sources"] == ["docs", "tickets"]
    request_span = observed.span("POST /api/chat/pool")
    lookups = [span for span in observed.spans if span.name == "retrieve_context"]
    assert len(lookups) == 2
    for span in lookups:
        assert parent_id(span) == request_span.context.span_id
    assert parent_id(observed.span("call_llm")) == request_span.context.span_id
    (event,) = observed.events
    assert event["request_id"] == response.headers["x-request-id"]
    assert event["feature_name"] == "chat.assistant"


def test_run_in_context_thread_in_request(
    observed: Observed, client: FlaskClient, app: Flask
) -> None:
    def lookup() -> None:
        with llmobs.retrieve_context(source="thread"):
            llmobs.bind_context(tenant_tier="pro")

    @app.post("/api/chat/thread")
    def in_thread() -> dict[str, Any]:
        worker = threading.Thread(target=run_in_context(lookup))
        worker.start()
        worker.join()
        return context_body()

    response = post(client, "/api/chat/thread")

    request_span = observed.span("POST /api/chat/thread")
    lookup_span = observed.span("retrieve_context")
    assert parent_id(lookup_span) == request_span.context.span_id
    assert response.json["tenant_tier"] == "pro"


def test_concurrent_requests_isolated(observed: Observed, app: Flask) -> None:
    def one(index: int) -> tuple[str, Any]:
        tenant = f"tenant-{index}"
        client = app.test_client()
        return tenant, post(client, "/api/chat/s", headers={"x-tenant-id": tenant})

    with ThreadPoolExecutor(max_workers=8) as executor:
        results = list(executor.map(one, range(40)))

    for tenant, response in results:
        assert response.json["tenant_id"] == tenant
    events = {event["request_id"]: event for event in observed.events}
    assert len(events) == 40
    for tenant, response in results:
        assert events[response.headers["x-request-id"]]["tenant_id"] == tenant
    trace_ids = {event["trace_id"] for event in observed.events}
    assert len(trace_ids) == 40


def test_wsgi_middleware_wraps_plain_app(observed: Observed) -> None:
    def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("204 No Content", [("X-Request-ID", "set-by-app")])
        return []

    client = Client(LLMObsWSGIMiddleware(plain_app))
    response = client.get(
        "/plain", headers={"x-request-id": "from-client"}, buffered=True
    )

    assert response.status_code == 204
    assert response.headers.getlist("x-request-id") == ["from-client"]
    (span,) = observed.spans
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 204
    assert attributes["llmobs.request_id"] == "from-client"
