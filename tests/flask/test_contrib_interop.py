"""The Flask extension next to the OpenTelemetry contrib Flask and WSGI
instrumentations, installed before or after it.

``FlaskInstrumentor`` starts its span in a ``before_request`` hook, inside the
llmobs WSGI middleware, so it always becomes an INTERNAL child of the llmobs
SERVER span. The contrib WSGI middleware makes the SERVER span when it wraps
llmobs, and an INTERNAL child when llmobs wraps it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind

import llmobs_core as llmobs
from llmobs_flask import LLMObs
from tests.conftest import Observed

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
STAGES = ("build_prompt", "retrieve_context", "call_llm", "postprocess")
USAGE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "usage": {"prompt_tokens": 50, "completion_tokens": 10},
}
Builder = Callable[[TracerProvider], Flask]
INSTRUMENTED: list[Flask] = []


def new_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/chat/<session>")
    def chat(session: str) -> dict[str, Any]:
        llmobs.bind_context(tenant_tier="enterprise")
        with llmobs.build_prompt():
            pass
        with llmobs.retrieve_context():
            time.sleep(0.001)
        with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
            call.record(USAGE)
        with llmobs.postprocess():
            pass
        context = llmobs.current_context()
        assert context is not None
        return {"request_id": context.request_id, "trace_id": context.trace_id}

    return app


def add_llmobs(app: Flask) -> None:
    LLMObs(app, features={"/api/chat/*": "chat.assistant"})


def instrument(app: Flask, provider: TracerProvider) -> None:
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    INSTRUMENTED.append(app)


def instrumentor_before(provider: TracerProvider) -> Flask:
    app = new_app()
    instrument(app, provider)
    add_llmobs(app)
    return app


def instrumentor_after(provider: TracerProvider) -> Flask:
    app = new_app()
    add_llmobs(app)
    instrument(app, provider)
    return app


def wsgi_outside(provider: TracerProvider) -> Flask:
    app = new_app()
    add_llmobs(app)
    app.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, tracer_provider=provider
    )
    return app


def wsgi_inside(provider: TracerProvider) -> Flask:
    app = new_app()
    app.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, tracer_provider=provider
    )
    add_llmobs(app)
    return app


@pytest.fixture(autouse=True)
def uninstrument_apps() -> Iterator[None]:
    yield
    while INSTRUMENTED:
        FlaskInstrumentor.uninstrument_app(INSTRUMENTED.pop())


def of_trace(spans: tuple[ReadableSpan, ...], trace_id: str) -> list[ReadableSpan]:
    return [span for span in spans if f"{span.context.trace_id:032x}" == trace_id]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[int]:
    by_id = {candidate.context.span_id: candidate for candidate in spans}
    found: list[int] = []
    while span.parent is not None and span.parent.span_id in by_id:
        found.append(span.parent.span_id)
        span = by_id[span.parent.span_id]
    return found


def post(client: FlaskClient, path: str, **headers: str) -> Any:
    # buffered=True reads the body and calls close(), as a WSGI server does.
    return client.post(path, headers={"x-tenant-id": "acme", **headers}, buffered=True)


def check_request(spans: list[ReadableSpan], response: Any) -> ReadableSpan:
    """Check one request's spans; return its SERVER span."""
    servers = [span for span in spans if span.kind is SpanKind.SERVER]
    assert len(servers) == 1, [span.name for span in servers]
    server = servers[0]
    attributes = dict(server.attributes or {})
    assert attributes["llmobs.request_id"] == response.headers["x-request-id"]
    assert attributes["llmobs.tenant_id"] == "acme"
    assert attributes["llmobs.tenant_tier"] == "enterprise"
    assert attributes["llm.feature_name"] == "chat.assistant"
    for name in STAGES:
        (stage,) = [span for span in spans if span.name == name]
        assert server.context.span_id in ancestors(stage, spans)
    return server


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(instrumentor_before, id="flask-instrumentor-before"),
        pytest.param(instrumentor_after, id="flask-instrumentor-after"),
        pytest.param(wsgi_outside, id="contrib-wsgi-outside"),
        pytest.param(wsgi_inside, id="contrib-wsgi-inside"),
    ],
)
def test_one_server_span_per_request(
    observed: Observed, build: Builder, caplog: pytest.LogCaptureFixture
) -> None:
    client = build(observed.provider).test_client()

    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        traced = post(client, "/api/chat/a", traceparent=TRACEPARENT)
        fresh = post(client, "/api/chat/b")
    spans = observed.spans

    assert traced.status_code == 200
    assert fresh.status_code == 200
    assert traced.json["trace_id"] == TRACE_ID
    server = check_request(of_trace(spans, TRACE_ID), traced)
    assert server.parent is not None
    assert server.parent.span_id == int(PARENT_ID, 16)
    fresh_trace_id = fresh.json["trace_id"]
    assert fresh_trace_id != TRACE_ID
    fresh_server = check_request(of_trace(spans, fresh_trace_id), fresh)
    assert fresh_server.parent is None
    traced_count = len(of_trace(spans, TRACE_ID))
    assert traced_count + len(of_trace(spans, fresh_trace_id)) == len(spans)
    labels = {"feature_name": "chat.assistant", "model": "gpt-4o-mini"}
    assert observed.sample("llm_requests_total", status="ok", **labels) == 2
    assert trace.get_current_span() is trace.INVALID_SPAN
    # The JSON event writer logs from its own thread at any time, so only
    # OpenTelemetry's context errors are looked at.
    context_errors = [r for r in caplog.records if r.name == "opentelemetry.context"]
    assert context_errors == []


@pytest.mark.parametrize("build", [instrumentor_before, instrumentor_after])
def test_flask_instrumentor_span_internal(observed: Observed, build: Builder) -> None:
    client = build(observed.provider).test_client()

    post(client, "/api/chat/a")

    (request_span,) = [span for span in observed.spans if span.kind is SpanKind.SERVER]
    contrib_spans = [
        span
        for span in observed.spans
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "opentelemetry.instrumentation.flask"
    ]
    assert len(contrib_spans) == 1
    assert contrib_spans[0].kind is SpanKind.INTERNAL
    assert contrib_spans[0].parent is not None
    assert contrib_spans[0].parent.span_id == request_span.context.span_id
    assert contrib_spans[0].name == "POST /api/chat/<session>"
    assert request_span.name == "POST /api/chat/<session>"
    assert request_span.instrumentation_scope is not None
    assert request_span.instrumentation_scope.name.startswith("llmobs")


def test_wsgi_outside_makes_llmobs_internal(observed: Observed) -> None:
    client = wsgi_outside(observed.provider).test_client()

    post(client, "/api/chat/a")

    ours = observed.span("llmobs POST /api/chat/<session>")
    (server,) = [span for span in observed.spans if span.kind is SpanKind.SERVER]
    assert ours.kind is SpanKind.INTERNAL
    assert ours.parent is not None
    assert ours.parent.span_id == server.context.span_id
