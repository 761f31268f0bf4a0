"""The WSGI middleware on plain WSGI apps, driven as a WSGI server would."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import llmobs_core as llmobs
from llmobs_core.context import llmobs_request
from llmobs_flask import LLMObsWSGIMiddleware
from tests.conftest import Observed

StartResponse = Callable[..., Any]


def environ_for(path: str = "/chat", **headers: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
    }
    for name, value in headers.items():
        environ[f"HTTP_{name.upper()}"] = value
    return environ


class Recorder:
    """A stand-in for the server's start_response."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.status = status
        self.headers = headers
        return lambda data: None

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


def streaming_app(chunks: int, *, fail_at: int | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            with llmobs.call_llm(model="gpt-4o-mini", streaming=True) as call:
                for index in range(chunks):
                    if index == fail_at:
                        raise RuntimeError("stream broke")
                    call.mark_first_token()
                    call.set_usage(output_tokens=index + 1)
                    yield b"chunk\n"

        return body()

    return app


def test_exhausted_body_ends_span_once(observed: Observed) -> None:
    app = LLMObsWSGIMiddleware(streaming_app(3))
    recorder = Recorder()
    body = app(environ_for(), recorder)

    assert observed.spans == ()
    chunks = list(body)
    body.close()  # type: ignore[attr-defined]

    assert chunks == [b"chunk\n"] * 3
    request_span = observed.span("GET")
    assert request_span.kind is SpanKind.SERVER
    assert dict(request_span.attributes or {})["http.response.status_code"] == 200
    call_span = observed.span("call_llm")
    assert call_span.parent is not None
    assert call_span.parent.span_id == request_span.context.span_id
    assert observed.events[0]["status"] == "ok"
    assert llmobs_request.get() is None


def test_closed_early_marks_client_closed(observed: Observed) -> None:
    app = LLMObsWSGIMiddleware(streaming_app(5))
    body = app(environ_for(), Recorder())
    iterator = iter(body)
    next(iterator)
    next(iterator)
    body.close()  # type: ignore[attr-defined]
    body.close()  # type: ignore[attr-defined]

    request_span = observed.span("GET")
    assert dict(request_span.attributes or {})["llmobs.client_closed"] is True
    assert request_span.status.status_code is StatusCode.UNSET
    (event,) = observed.events
    assert event["status"] == "cancelled"
    assert event["output_tokens"] == 2
    assert llmobs_request.get() is None


def test_body_error_marks_span(observed: Observed) -> None:
    app = LLMObsWSGIMiddleware(streaming_app(5, fail_at=1))
    body = app(environ_for(), Recorder())

    with pytest.raises(RuntimeError, match="stream broke"):
        list(body)
    body.close()  # type: ignore[attr-defined]

    request_span = observed.span("GET")
    assert request_span.status.status_code is StatusCode.ERROR
    assert dict(request_span.attributes or {})["error.type"] == "RuntimeError"
    assert observed.events[0]["status"] == "error"


def test_app_raising_resets_context(observed: Observed) -> None:
    def failing(environ: dict[str, Any], start_response: StartResponse) -> Any:
        raise ValueError("handler failed")

    with pytest.raises(ValueError, match="handler failed"):
        LLMObsWSGIMiddleware(failing)(environ_for(), Recorder())

    span = observed.span("GET")
    assert dict(span.attributes or {})["http.response.status_code"] == 500
    assert span.status.status_code is StatusCode.ERROR
    assert llmobs_request.get() is None


def test_request_id_header_replaced_once(observed: Observed) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", [("X-Request-ID", "from-app")])
        return [b"ok"]

    recorder = Recorder()
    body = LLMObsWSGIMiddleware(app)(environ_for(x_request_id="abc-123"), recorder)
    list(body)
    body.close()  # type: ignore[attr-defined]

    assert recorder.header("x-request-id") == ["abc-123"]


def test_next_request_gets_fresh_context(observed: Observed) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        context = llmobs.current_context()
        assert context is not None
        return [str(context.tenant_id).encode()]

    middleware = LLMObsWSGIMiddleware(app)
    first = middleware(environ_for(x_tenant_id="acme"), Recorder())
    first_body = b"".join(first)
    first.close()  # type: ignore[attr-defined]
    second = middleware(environ_for(), Recorder())
    second_body = b"".join(second)
    second.close()  # type: ignore[attr-defined]

    assert first_body == b"acme"
    assert second_body == b"None"


def test_excluded_and_nested_pass_through(observed: Observed) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        return [b"ok"]

    inner = LLMObsWSGIMiddleware(app, excluded_paths=["/healthz"])
    outer = LLMObsWSGIMiddleware(inner, excluded_paths=["/healthz"])

    excluded = Recorder()
    assert list(outer(environ_for("/healthz"), excluded)) == [b"ok"]
    nested = outer(environ_for("/chat"), Recorder())
    list(nested)
    nested.close()  # type: ignore[attr-defined]

    assert excluded.header("x-request-id") == []
    assert [span.name for span in observed.spans] == ["GET"]


def test_feature_map_and_script_name(observed: Observed) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        with llmobs.call_llm(model="m"):
            pass
        return [b"ok"]

    middleware = LLMObsWSGIMiddleware(app, features={"/gw/api/chat/*": "chat"})
    environ = environ_for("/api/chat/x")
    environ["SCRIPT_NAME"] = "/gw"
    body = middleware(environ, Recorder())
    list(body)
    body.close()  # type: ignore[attr-defined]

    assert observed.events[0]["feature_name"] == "chat"
