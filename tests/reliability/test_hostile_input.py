"""Hostile request headers and paths through both middlewares.

Each case must leave the request successful, the request id safe, and nothing
of the raw value in response headers; header values that break HTTP framing
(CR/LF) are sent as direct ASGI calls, since h11 rejects them on the wire.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from flask import Flask

import llmobs_core
from llmobs_asgi import LLMObsMiddleware
from llmobs_flask import LLMObs
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
RESPONSE = {
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}
VALID_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MAX_LABEL_VALUES = 100
DISTINCT_VALUES = 10_000

CASES: list[tuple[str, dict[str, str], str | None]] = [
    ("request-id-oversized", {"x-request-id": "a" * 10_000}, "x-request-id"),
    ("request-id-spaces", {"x-request-id": "id with spaces"}, "x-request-id"),
    ("traceparent-malformed", {"traceparent": "00-zz-yy-01"}, "traceparent"),
    ("traceparent-uppercase", {"traceparent": VALID_PARENT.upper()}, "traceparent"),
    (
        "traceparent-zero",
        {"traceparent": f"00-{'0' * 32}-{'0' * 16}-01"},
        "traceparent",
    ),
    ("traceparent-version-ff", {"traceparent": "ff" + VALID_PARENT[2:]}, "traceparent"),
    ("traceparent-oversized", {"traceparent": "0" * 10_000}, "traceparent"),
    ("tenant-oversized", {"x-tenant-id": "t" * 10_000}, None),
    ("tenant-control", {"x-tenant-id": "acme\x01\x1b[31m\x7f"}, None),
    ("platform-control", {"x-platform": "ios\x00\x08"}, None),
    ("feature-tier-oversized", {"x-tenant-tier": "x" * 5_000}, None),
    ("debug-forged", {"x-llmobs-debug": "forged.token.value"}, None),
]


def call_once() -> None:
    with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.record(RESPONSE)


def create_fastapi_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(LLMObsMiddleware, features={"/api/*": "chat.assistant"})

    @app.api_route("/{path:path}", methods=["GET"])
    async def anything(path: str) -> dict[str, str]:
        call_once()
        return {"answer": "ok"}

    return app


def create_flask_app() -> Flask:
    app = Flask(__name__)
    LLMObs(app, features={"/api/*": "chat.assistant"})

    @app.get("/", defaults={"path": ""})
    @app.get("/<path:path>")
    def anything(path: str) -> dict[str, str]:
        call_once()
        return {"answer": "ok"}

    return app


@pytest.fixture(scope="module")
def fastapi_url() -> Iterator[str]:
    # The middleware reads the configuration of each test on every request.
    with run_uvicorn_in_thread(create_fastapi_app()) as url:
        yield url


def assert_safe(
    observed: Observed, status: int, headers: dict[str, str], sent: dict[str, str]
) -> dict[str, Any]:
    assert status == 200
    assert SAFE_REQUEST_ID.fullmatch(headers["x-request-id"])
    for value in sent.values():
        assert value not in headers.values()
    (event,) = observed.events
    for field in ("tenant_id", "tenant_tier", "platform"):
        assert len(event[field] or "") <= 256
    assert event["capture_mode"] == "none"
    return event


@pytest.mark.parametrize(
    ("headers", "counted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_fastapi_hostile_header(
    observed: Observed, fastapi_url: str, headers: dict[str, str], counted: str | None
) -> None:
    if any(CONTROL.search(value) for value in headers.values()):
        # h11 rejects control characters on the wire, so call the app directly.
        raw = [(name.encode(), value.encode()) for name, value in headers.items()]
        status, raw_headers = asyncio.run(asgi_get(raw, "/api/chat"))
        received = {k.decode(): v.decode("latin-1") for k, v in raw_headers.items()}
    else:
        response = httpx.get(f"{fastapi_url}/api/chat", headers=headers, timeout=10.0)
        status, received = response.status_code, dict(response.headers)

    assert_safe(observed, status, received, headers)
    if counted is not None:
        invalid = observed.sample(
            "llmobs_invalid_request_headers_total", header=counted
        )
        assert invalid == 1


@pytest.mark.parametrize(
    ("headers", "counted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_flask_hostile_header(
    observed: Observed, headers: dict[str, str], counted: str | None
) -> None:
    client = create_flask_app().test_client()
    # Closing the response ends the request span and detaches its context, so
    # it does not stay current for later tests.
    with client.get("/api/chat", headers=headers) as response:
        status, received = response.status_code, dict(response.headers)

    assert_safe(observed, status, received, headers)
    if counted is not None:
        invalid = observed.sample(
            "llmobs_invalid_request_headers_total", header=counted
        )
        assert invalid == 1


async def asgi_get(
    headers: list[tuple[bytes, bytes]], path: str
) -> tuple[int, dict[bytes, bytes]]:
    app = create_fastapi_app()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "header",
    [b"x-request-id", b"x-tenant-id", b"x-platform"],
    ids=["request-id", "tenant", "platform"],
)
async def test_asgi_crlf_header(observed: Observed, header: bytes) -> None:
    value = b"abc\r\nX-Injected: 1\r\n"

    status, headers = await asgi_get([(header, value)], "/api/chat")

    assert status == 200
    assert b"x-injected" not in headers
    assert SAFE_REQUEST_ID.fullmatch(headers[b"x-request-id"].decode())
    line = observed.capture.lines[0]
    assert "\r" not in line
    assert "\n" not in line


def test_flask_crlf_request_id(observed: Observed) -> None:
    client = create_flask_app().test_client()

    environ = {"HTTP_X_REQUEST_ID": "a\r\nb"}
    with client.get("/api/chat", environ_base=environ) as response:
        status, request_id = response.status_code, response.headers["x-request-id"]

    assert status == 200
    assert SAFE_REQUEST_ID.fullmatch(request_id)


def test_duplicated_traceparent_ignored(observed: Observed, fastapi_url: str) -> None:
    headers = [("traceparent", VALID_PARENT), ("traceparent", VALID_PARENT)]

    response = httpx.get(f"{fastapi_url}/api/chat", headers=headers, timeout=10.0)

    (event,) = observed.events
    assert response.status_code == 200
    assert event["trace_id"] != VALID_PARENT.split("-")[1]
    invalid = observed.sample(
        "llmobs_invalid_request_headers_total", header="traceparent"
    )
    assert invalid == 1


@pytest.mark.parametrize(
    "path",
    ["/api/" + "é" * 5_000, "/api/" + "a" * 10_240],
    ids=["unicode-10kb", "ascii-10kb"],
)
def test_long_path_both(observed: Observed, fastapi_url: str, path: str) -> None:
    fastapi_response = httpx.get(f"{fastapi_url}{path}", timeout=10.0)
    with create_flask_app().test_client().get(path) as flask_response:
        flask_status = flask_response.status_code

    assert fastapi_response.status_code == 200
    assert flask_status == 200
    assert len(observed.events) == 2


def label_values(observed: Observed) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {}
    for metric in observed.registry.collect():
        for sample in metric.samples:
            for label, value in sample.labels.items():
                values.setdefault(label, set()).add(value)
    return values


def test_distinct_values_keep_labels_bounded(observed: Observed) -> None:
    app = create_flask_app()
    client = app.test_client()

    for index in range(DISTINCT_VALUES):
        headers = {
            "x-tenant-id": f"tenant-{index}",
            "x-tenant-tier": f"tier-{index}",
            "x-region": f"region-{index}",
        }
        with client.get(f"/api/path-{index}", headers=headers) as response:
            assert response.status_code == 200

    values = label_values(observed)
    assert "tenant_id" not in values
    for label, seen in values.items():
        assert len(seen) <= MAX_LABEL_VALUES + 1, label
    assert json.loads(observed.capture.lines[-1])["tenant_id"] == "tenant-9999"
