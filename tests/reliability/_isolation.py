"""Faults for the failure isolation tests of both middlewares.

Each fault makes one llmobs part raise and counts how often it did, so a
test can check that the request really went through the failing part.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.trace import Span

import llmobs_core
import llmobs_core._call
from llmobs_core.emitters import CallStart, StageEvent
from llmobs_core.pricing import PriceBook
from llmobs_core.schema import LLMCallLog
from tests._servers import LOOPBACK_HOST

RESPONSE = {
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}
CHUNKS = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
OUTGOING_URL = "http://provider.test/v1/chat/completions"
# Response headers that llmobs adds, and so may differ with and without it.
ADDED_HEADERS = frozenset({"x-request-id"})
REDIS_TIMEOUT_SECONDS = 0.1


@dataclass
class Raiser:
    """Callable that raises ``RuntimeError`` and counts its calls."""

    calls: int = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise RuntimeError("llmobs part failed")


@dataclass
class HostileResponse:
    """Response object whose every attribute access raises, counted."""

    accesses: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        self.accesses.append(name)
        raise RuntimeError(f"attribute {name} failed")


class RaisingEmitter:
    """Emitter that raises on every call start, call event and stage event."""

    name = "raising"

    def emit_call_start(self, start: CallStart) -> None:
        raise RuntimeError("emitter failed at call start")

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        raise RuntimeError("emitter failed")

    def emit_stage(self, event: StageEvent) -> None:
        raise RuntimeError("emitter failed")


Fault = Callable[[pytest.MonkeyPatch], Raiser]


def raising_price(monkeypatch: pytest.MonkeyPatch) -> Raiser:
    raiser = Raiser()
    monkeypatch.setattr(PriceBook, "price", raiser)
    return raiser


def raising_chunk(monkeypatch: pytest.MonkeyPatch) -> Raiser:
    raiser = Raiser()
    monkeypatch.setattr(llmobs_core._call, "read_stream_item", raiser)
    return raiser


def raising_chunk_record(monkeypatch: pytest.MonkeyPatch) -> Raiser:
    raiser = Raiser()
    monkeypatch.setattr(llmobs_core.LLMCall, "record_chunk", raiser)
    return raiser


def raising_propagator(monkeypatch: pytest.MonkeyPatch) -> Raiser:
    """Make the trace context injection of the outgoing-request hooks raise."""
    raiser = Raiser()
    monkeypatch.setattr(propagate, "inject", raiser)
    return raiser


# Case id, path served and fault.
FAULT_CASES: list[tuple[str, str, Fault]] = [
    ("price-lookup-raises", "/api/chat", raising_price),
    ("chunk-reader-raises", "/api/stream", raising_chunk),
    ("chunk-recording-raises", "/api/stream", raising_chunk_record),
]


def comparable_headers(headers: Any) -> list[tuple[str, str]]:
    """Return the response headers without those llmobs adds, names lower-cased."""
    return [
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower() not in ADDED_HEADERS
    ]


def configure_raising_emitter(registry: Any, provider: Any, hash_key: str) -> None:
    """Configure llmobs with only an emitter that raises everywhere."""
    llmobs_core.configure(
        emitters=[RaisingEmitter()],
        registry=registry,
        tracer_provider=provider,
        hash_key=hash_key,
    )


def configure_redis_budget(
    url: str, registry: Any, provider: Any, hash_key: str
) -> None:
    """Configure llmobs with one budget kept in the Redis server at ``url``."""
    book = llmobs_core.BudgetBook(
        [llmobs_core.Budget(name="chat", limit_usd=1.0)],
        store=llmobs_core.RedisBudgetStore(url, timeout_seconds=REDIS_TIMEOUT_SECONDS),
        on_store_error="allow",
        registry=registry,
    )
    llmobs_core.configure(
        registry=registry, tracer_provider=provider, hash_key=hash_key, budgets=book
    )


@contextlib.contextmanager
def refused_redis_url() -> Iterator[str]:
    """Yield a Redis URL on a loopback port where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port = sock.getsockname()[1]
    # The port is closed once the socket is, so connecting is refused.
    yield f"redis://{LOOPBACK_HOST}:{port}/0"


@contextlib.contextmanager
def unresponsive_redis_url() -> Iterator[str]:
    """Yield a Redis URL on a loopback port that accepts but never replies.

    The kernel completes connections into the listen backlog, so the client
    connects and then times out waiting for a reply.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        sock.listen(16)
        yield f"redis://{LOOPBACK_HOST}:{sock.getsockname()[1]}/0"


REDIS_OUTAGES = {
    "redis-refused": refused_redis_url,
    "redis-unresponsive": unresponsive_redis_url,
}
