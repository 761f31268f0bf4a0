"""Failures inside llmobs never change the user's response.

Each case serves the same request from a Flask app with and without the
llmobs extension, with one llmobs part made to raise, and compares the
status codes and bodies byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response
from opentelemetry.trace import Span

import llmobs_core
import llmobs_core._call
from llmobs_core.emitters import StageEvent
from llmobs_core.pricing import PriceBook
from llmobs_core.schema import LLMCallLog
from llmobs_flask import LLMObs
from tests.conftest import TEST_HASH_KEY, Observed

RESPONSE = {
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}
CHUNKS = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]


class RaisingEmitter:
    """Emitter that raises on every event."""

    name = "raising"

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        raise RuntimeError("emitter failed")

    def emit_stage(self, event: StageEvent) -> None:
        raise RuntimeError("emitter failed")


class HostileResponse:
    """Response object whose every attribute raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"attribute {name} failed")


def raise_error(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("llmobs part failed")


def create_app(*, observed: bool, response: object) -> Flask:
    app = Flask(__name__)
    if observed:
        LLMObs(app, features={"/api/*": "chat.assistant"})

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

    return app


def serve(path: str, *, observed: bool, response: object) -> tuple[int, bytes]:
    client = create_app(observed=observed, response=response).test_client()
    reply = client.post(path, headers={"x-tenant-id": "acme"})
    return reply.status_code, reply.get_data()


@pytest.fixture
def raising_emitter(observed: Observed) -> None:
    llmobs_core.configure(
        emitters=[RaisingEmitter()],
        registry=observed.registry,
        tracer_provider=observed.provider,
        hash_key=TEST_HASH_KEY,
    )


Fault = Callable[[pytest.MonkeyPatch], None]


def no_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave llmobs as it is."""


def raising_price(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PriceBook, "price", raise_error)


def raising_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llmobs_core._call, "read_stream_item", raise_error)


def raising_chunk_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llmobs_core.LLMCall, "record_chunk", raise_error)


@pytest.mark.parametrize(
    ("path", "response", "fault"),
    [
        ("/api/chat", HostileResponse(), no_fault),
        ("/api/chat", RESPONSE, raising_price),
        ("/api/stream", RESPONSE, raising_chunk),
        ("/api/stream", RESPONSE, raising_chunk_record),
    ],
    ids=[
        "record-hostile-object",
        "price-lookup-raises",
        "chunk-reader-raises",
        "chunk-recording-raises",
    ],
)
def test_fault_keeps_response(
    observed: Observed,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    response: object,
    fault: Fault,
) -> None:
    expected = serve(path, observed=False, response=response)
    fault(monkeypatch)

    actual = serve(path, observed=True, response=response)

    assert actual[0] == expected[0]
    assert actual[1] == expected[1]


@pytest.mark.parametrize("path", ["/api/chat", "/api/stream"], ids=["plain", "stream"])
def test_raising_emitter_keeps_response(
    observed: Observed, raising_emitter: None, path: str
) -> None:
    expected = serve(path, observed=False, response=RESPONSE)

    actual = serve(path, observed=True, response=RESPONSE)

    assert actual[0] == expected[0]
    assert actual[1] == expected[1]
    errors = observed.sample("llmobs_emitter_errors_total", emitter="raising")
    assert errors is not None
    assert errors >= 2
