"""LLMObsMiddleware next to other OpenTelemetry server instrumentations.

Each scenario serves a FastAPI app under uvicorn with llmobs and one other
instrumentation, in either order, and checks every request for one SERVER
span, the llmobs attributes on it, one trace, and stage spans below it.
Every instrumentation gets the test's tracer provider explicitly.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.asgi import (
    OpenTelemetryMiddleware as ContribMiddleware,
)
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind
from starlette.middleware.opentelemetry import (
    OpenTelemetryMiddleware as StarletteMiddleware,
)

import llmobs_asgi.middleware
import llmobs_core as llmobs
from llmobs_asgi import LLMObsMiddleware
from llmobs_asgi._interop import HandoffApp
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
STAGES = ("build_prompt", "retrieve_context", "call_llm", "postprocess")
USAGE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "usage": {"prompt_tokens": 50, "completion_tokens": 10},
}
LLMOBS_OPTIONS: dict[str, Any] = {
    "features": {"/api/chat/*": "chat.assistant"},
    "excluded_paths": ["/healthz"],
}
Builder = Callable[[TracerProvider], Any]
INSTRUMENTED: list[FastAPI] = []


def new_app(**options: Any) -> FastAPI:
    app = FastAPI(**options)

    @app.post("/api/chat/{session}")
    async def chat(session: str) -> dict[str, Any]:
        llmobs.bind_context(tenant_tier="enterprise")
        with llmobs.build_prompt():
            pass
        async with llmobs.retrieve_context():
            await asyncio.sleep(0.001)
        with llmobs.call_llm(model="gpt-4o-mini", provider="openai") as call:
            call.record(USAGE)
        with llmobs.postprocess():
            pass
        context = llmobs.current_context()
        assert context is not None
        return {"request_id": context.request_id, "trace_id": context.trace_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def add_llmobs(app: FastAPI) -> None:
    app.add_middleware(LLMObsMiddleware, **LLMOBS_OPTIONS)


def instrument(app: FastAPI, provider: TracerProvider) -> None:
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    INSTRUMENTED.append(app)


def contrib_outside(provider: TracerProvider) -> Any:
    app = new_app()
    add_llmobs(app)
    app.add_middleware(ContribMiddleware, tracer_provider=provider)
    return app


def contrib_inside(provider: TracerProvider) -> Any:
    app = new_app()
    app.add_middleware(ContribMiddleware, tracer_provider=provider)
    add_llmobs(app)
    return app


def starlette_outside(provider: TracerProvider) -> Any:
    app = new_app()
    add_llmobs(app)
    app.add_middleware(StarletteMiddleware, tracer_provider=provider)
    return app


def starlette_inside(provider: TracerProvider) -> Any:
    app = new_app()
    app.add_middleware(StarletteMiddleware, tracer_provider=provider)
    add_llmobs(app)
    return app


def instrumentor_before(provider: TracerProvider) -> Any:
    app = new_app()
    instrument(app, provider)
    add_llmobs(app)
    return app


def instrumentor_after(provider: TracerProvider) -> Any:
    app = new_app()
    add_llmobs(app)
    instrument(app, provider)
    return app


def llmobs_wraps_contrib_app(provider: TracerProvider) -> Any:
    app = new_app()
    app.add_middleware(ContribMiddleware, tracer_provider=provider)
    return LLMObsMiddleware(app, **LLMOBS_OPTIONS)


def llmobs_wraps_instrumented_app(provider: TracerProvider) -> Any:
    app = new_app()
    instrument(app, provider)
    return LLMObsMiddleware(app, **LLMOBS_OPTIONS)


def llmobs_wraps_native_telemetry(provider: TracerProvider) -> Any:
    app = new_app(telemetry={"tracer_provider": provider})
    return LLMObsMiddleware(app, **LLMOBS_OPTIONS)


SCENARIOS = [
    pytest.param(contrib_outside, id="contrib-asgi-outside"),
    pytest.param(contrib_inside, id="contrib-asgi-inside"),
    pytest.param(starlette_outside, id="starlette-outside"),
    pytest.param(starlette_inside, id="starlette-inside"),
    pytest.param(instrumentor_before, id="fastapi-instrumentor-before"),
    pytest.param(instrumentor_after, id="fastapi-instrumentor-after"),
    pytest.param(llmobs_wraps_contrib_app, id="llmobs-wraps-contrib-app"),
    pytest.param(llmobs_wraps_instrumented_app, id="llmobs-wraps-instrumented-app"),
    pytest.param(llmobs_wraps_native_telemetry, id="llmobs-wraps-native-telemetry"),
]


@pytest.fixture(autouse=True)
def restore_fastapi_instrumentor() -> Iterator[None]:
    # instrument_app patches BackgroundTask.__call__ for the whole process.
    yield
    while INSTRUMENTED:
        FastAPIInstrumentor.uninstrument_app(INSTRUMENTED.pop())


def wait_for(observed: Observed, requests: int) -> tuple[ReadableSpan, ...]:
    """Poll until the SERVER and llmobs spans of ``requests`` requests ended.

    The server ends them on its own thread, after the client has the response.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = observed.spans
        servers = [span for span in spans if span.kind is SpanKind.SERVER]
        ours = [span for span in spans if span.name.startswith("llmobs ")]
        if len(servers) >= requests and len(ours) >= requests:
            return spans
        time.sleep(0.01)
    raise AssertionError(f"spans never ended; got {[s.name for s in observed.spans]}")


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record each middleware that scans its app."""
    calls: list[object] = []
    real_scan = llmobs_asgi.middleware.scan_app

    def counting_scan(middleware: Any) -> Any:
        calls.append(middleware)
        return real_scan(middleware)

    monkeypatch.setattr(llmobs_asgi.middleware, "scan_app", counting_scan)
    return calls


def app_chain(app: Any) -> list[Any]:
    """Return ``app`` and the apps it reaches through ``app`` attributes."""
    chain: list[Any] = []
    while app is not None and all(app is not seen for seen in chain):
        chain.append(app)
        app = getattr(app, "app", None)
    return chain


def of_trace(spans: tuple[ReadableSpan, ...], trace_id: str) -> list[ReadableSpan]:
    return [span for span in spans if f"{span.context.trace_id:032x}" == trace_id]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[int]:
    by_id = {candidate.context.span_id: candidate for candidate in spans}
    found: list[int] = []
    while span.parent is not None and span.parent.span_id in by_id:
        found.append(span.parent.span_id)
        span = by_id[span.parent.span_id]
    return found


def check_request(spans: list[ReadableSpan], response: httpx.Response) -> ReadableSpan:
    """Check one request's spans; return its SERVER span."""
    servers = [span for span in spans if span.kind is SpanKind.SERVER]
    assert len(servers) == 1, [span.name for span in servers]
    server = servers[0]
    attributes = dict(server.attributes or {})
    assert attributes["llmobs.request_id"] == response.headers["x-request-id"]
    assert attributes["llmobs.tenant_id"] == "acme"
    assert attributes["llm.feature_name"] == "chat.assistant"
    # Bound by the endpoint, so copied to the SERVER span at the end.
    assert attributes["llmobs.tenant_tier"] == "enterprise"

    ours = [span for span in spans if span.name.startswith("llmobs ")]
    assert [span.name for span in ours] == ["llmobs POST /api/chat/{session}"]
    assert ours[0].kind is SpanKind.INTERNAL
    assert ours[0].parent is not None
    assert ours[0].parent.span_id == server.context.span_id
    for name in STAGES:
        (stage,) = [span for span in spans if span.name == name]
        assert ours[0].context.span_id in ancestors(stage, spans)
        assert server.context.span_id in ancestors(stage, spans)
    return server


@pytest.mark.parametrize("build", SCENARIOS)
def test_one_server_span_per_request(observed: Observed, build: Builder) -> None:
    app = build(observed.provider)
    headers = {"x-tenant-id": "acme"}
    with run_uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as client:
        traced = client.post(
            "/api/chat/a", headers={**headers, "traceparent": TRACEPARENT}
        )
        fresh = client.post("/api/chat/b", headers=headers)
        spans = wait_for(observed, requests=2)

    assert traced.status_code == 200
    assert fresh.status_code == 200
    assert traced.json()["trace_id"] == TRACE_ID
    traced_spans = of_trace(spans, TRACE_ID)
    server = check_request(traced_spans, traced)
    assert server.parent is not None
    assert server.parent.span_id == int(PARENT_ID, 16)
    fresh_trace_id = fresh.json()["trace_id"]
    assert fresh_trace_id != TRACE_ID
    fresh_server = check_request(of_trace(spans, fresh_trace_id), fresh)
    assert fresh_server.parent is None
    assert len(traced_spans) + len(of_trace(spans, fresh_trace_id)) == len(spans)
    events = observed.events
    assert [event["trace_id"] for event in events] == [TRACE_ID, fresh_trace_id]
    assert [event["request_id"] for event in events] == [
        traced.headers["x-request-id"],
        fresh.headers["x-request-id"],
    ]
    labels = {"feature_name": "chat.assistant", "model": "gpt-4o-mini"}
    assert observed.sample("llm_requests_total", status="ok", **labels) == 2


@pytest.mark.parametrize("build", [starlette_inside, contrib_inside])
def test_excluded_path_keeps_other_span(observed: Observed, build: Builder) -> None:
    app = build(observed.provider)
    with run_uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as client:
        response = client.get("/healthz")
        deadline = time.monotonic() + 10
        while not observed.spans and time.monotonic() < deadline:
            time.sleep(0.01)

    assert response.json() == {"status": "ok"}
    assert "x-request-id" not in response.headers
    servers = [span for span in observed.spans if span.kind is SpanKind.SERVER]
    assert len(servers) == 1
    assert not any(span.name.startswith("llmobs") for span in observed.spans)
    assert "llmobs.request_id" not in dict(servers[0].attributes or {})


def test_handoff_response_unchanged(observed: Observed) -> None:
    headers = {"x-request-id": "r-1", "traceparent": TRACEPARENT}
    plain = new_app()
    add_llmobs(plain)
    with run_uvicorn_in_thread(plain) as url:
        expected = httpx.post(f"{url}/api/chat/a", headers=headers)
    with run_uvicorn_in_thread(starlette_inside(observed.provider)) as url:
        response = httpx.post(f"{url}/api/chat/a", headers=headers)

    assert response.status_code == expected.status_code
    assert response.content == expected.content
    assert response.headers.get_list("x-request-id") == ["r-1"]
    names = {name for name in response.headers if name != "date"}
    assert names == {name for name in expected.headers if name != "date"}


def test_scan_once_without_instrumentation(
    observed: Observed, scans: list[object]
) -> None:
    app = new_app()
    add_llmobs(app)
    with run_uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as client:
        for session in ("a", "b", "c"):
            assert client.post(f"/api/chat/{session}").status_code == 200

    assert len(scans) == 1
    assert [span.kind for span in observed.spans if span.name.startswith("POST")] == [
        SpanKind.SERVER
    ] * 3


def test_rebuilt_stack_scanned_again(observed: Observed, scans: list[object]) -> None:
    app = new_app()
    app.add_middleware(StarletteMiddleware, tracer_provider=observed.provider)
    wrapped = LLMObsMiddleware(app, **LLMOBS_OPTIONS)
    with run_uvicorn_in_thread(wrapped) as url, httpx.Client(base_url=url) as client:
        first = client.post("/api/chat/a", headers={"x-tenant-id": "acme"})
        second = client.post("/api/chat/b", headers={"x-tenant-id": "acme"})
        app.middleware_stack = app.build_middleware_stack()
        third = client.post("/api/chat/c", headers={"x-tenant-id": "acme"})
        spans = wait_for(observed, requests=3)

    assert len(scans) == 2
    for response in (first, second, third):
        check_request(of_trace(spans, response.json()["trace_id"]), response)
    inner_apps = app_chain(app.middleware_stack)
    assert len([inner for inner in inner_apps if isinstance(inner, HandoffApp)]) == 1


def test_two_apps_each_hand_off(observed: Observed) -> None:
    first = starlette_inside(observed.provider)
    second = starlette_inside(observed.provider)
    headers = {"x-tenant-id": "acme"}
    with (
        run_uvicorn_in_thread(first) as first_url,
        run_uvicorn_in_thread(second) as second_url,
    ):
        responses = [
            httpx.post(f"{first_url}/api/chat/a", headers=headers),
            httpx.post(f"{second_url}/api/chat/b", headers=headers),
            httpx.post(f"{first_url}/api/chat/c", headers=headers),
        ]
        spans = wait_for(observed, requests=3)

    for response in responses:
        check_request(of_trace(spans, response.json()["trace_id"]), response)
    labels = {"feature_name": "chat.assistant", "model": "gpt-4o-mini"}
    assert observed.sample("llm_requests_total", status="ok", **labels) == 3


# Runs in a fresh interpreter because the global tracer provider can be set
# only once per process; FastAPI's built-in telemetry and the instrumentors
# then use it without being given a provider.
GLOBAL_PROVIDER_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import fastapi
    from fastapi.testclient import TestClient
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
    from prometheus_client import CollectorRegistry

    import llmobs_core as llmobs
    from llmobs_asgi import LLMObsMiddleware

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    registry = CollectorRegistry()
    llmobs.configure(registry=registry, hash_key="k" * 32)

    def new_app():
        app = fastapi.FastAPI()

        @app.get("/items/{item_id}")
        async def item(item_id: str):
            with llmobs.call_llm(model="gpt-4o-mini"):
                pass
            return {"item": item_id}

        return app

    def native_inside():
        app = new_app()
        app.add_middleware(LLMObsMiddleware)
        return app

    def native_wrapped():
        return LLMObsMiddleware(new_app())

    def instrumented_inside():
        app = new_app()
        FastAPIInstrumentor.instrument_app(app)
        app.add_middleware(LLMObsMiddleware)
        return app

    def instrumented_wrapped():
        app = new_app()
        FastAPIInstrumentor.instrument_app(app)
        return LLMObsMiddleware(app)

    def instrumentor_class_patched():
        # Replaces fastapi.FastAPI for the rest of the process: run it last.
        FastAPIInstrumentor().instrument()
        app = new_app()
        app.add_middleware(LLMObsMiddleware)
        return app

    results = {}
    for build in (
        native_inside,
        native_wrapped,
        instrumented_inside,
        instrumented_wrapped,
        instrumentor_class_patched,
    ):
        exporter.clear()
        with TestClient(build()) as client:
            response = client.get("/items/7", headers={"traceparent": sys.argv[1]})
        results[build.__name__] = {
            "request_id": response.headers["x-request-id"],
            "spans": [
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": format(span.context.trace_id, "032x"),
                    "id": span.context.span_id,
                    "parent": span.parent.span_id if span.parent else None,
                    "request_id": dict(span.attributes).get("llmobs.request_id"),
                }
                for span in exporter.get_finished_spans()
            ],
        }
    results["llm_requests_total"] = sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "llm_requests_total"
    )
    print(json.dumps(results))
    """
)
GLOBAL_SCENARIOS = (
    "native_inside",
    "native_wrapped",
    "instrumented_inside",
    "instrumented_wrapped",
    "instrumentor_class_patched",
)


@pytest.fixture(scope="module")
def global_provider_results() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT, TRACEPARENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    results: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("scenario", GLOBAL_SCENARIOS)
def test_global_provider_one_server_span(
    global_provider_results: dict[str, Any], scenario: str
) -> None:
    result = global_provider_results[scenario]
    spans = result["spans"]

    servers = [span for span in spans if span["kind"] == "SERVER"]
    assert len(servers) == 1, [span["name"] for span in servers]
    assert servers[0]["request_id"] == result["request_id"]
    assert servers[0]["parent"] == int(PARENT_ID, 16)
    assert {span["trace_id"] for span in spans} == {TRACE_ID}
    (ours,) = [span for span in spans if span["name"].startswith("llmobs ")]
    assert ours["name"] == "llmobs GET /items/{item_id}"
    assert ours["kind"] == "INTERNAL"
    assert ours["parent"] == servers[0]["id"]
    (call,) = [span for span in spans if span["name"] == "call_llm"]
    by_id = {span["id"]: span for span in spans}
    parent = by_id.get(call["parent"])
    while parent is not None and parent is not ours:
        parent = by_id.get(parent["parent"])
    assert parent is ours


def test_global_provider_counts_each_call(
    global_provider_results: dict[str, Any],
) -> None:
    assert global_provider_results["llm_requests_total"] == len(GLOBAL_SCENARIOS)
