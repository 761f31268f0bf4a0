"""A blocked log sink never delays requests, and shutdown writes queued events.

The sink is a logging handler that waits on an ``Event``: every request must
complete while it still waits, which shows that no request waited for it.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import llmobs_core
from llmobs_asgi import LLMObsMiddleware
from llmobs_core.emitters import (
    EVENTS_LOGGER,
    JsonLogEmitter,
    OTelSpanEmitter,
    PrometheusEmitter,
)
from tests._servers import run_uvicorn_in_thread
from tests.conftest import TEST_HASH_KEY, Observed
from tests.reliability._processes import (
    fake_provider_process,
    fastapi_gateway_process,
    stop_process,
)

QUEUE_SIZE = 50
REQUESTS = 300
BLOCK_TIMEOUT_SECONDS = 60.0
SHUTDOWN_REQUESTS = 200
STOP_TIMEOUT_SECONDS = 20.0
RESPONSE = {
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}


class BlockingHandler(logging.Handler):
    """Keep each line, but only after ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.release = threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.release.wait(BLOCK_TIMEOUT_SECONDS)
        self.lines.append(record.getMessage())


@pytest.fixture
def blocked_sink(observed: Observed) -> Iterator[BlockingHandler]:
    """Configure llmobs with a small JSON queue in front of a blocked handler."""
    prometheus = PrometheusEmitter(observed.registry)
    on_drop = prometheus.metrics.events_dropped.labels(JsonLogEmitter.name).inc
    llmobs_core.configure(
        emitters=[
            JsonLogEmitter(queue_size=QUEUE_SIZE, on_drop=on_drop),
            prometheus,
            OTelSpanEmitter(),
        ],
        registry=observed.registry,
        tracer_provider=observed.provider,
        hash_key=TEST_HASH_KEY,
    )
    handler = BlockingHandler()
    logger = logging.getLogger(EVENTS_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        handler.release.set()
        llmobs_core.flush(timeout=10)
        logger.removeHandler(handler)


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(LLMObsMiddleware, features={"/chat": "chat.assistant"})

    @app.post("/chat")
    async def chat() -> dict[str, str]:
        with llmobs_core.call_llm(model="gpt-4o-mini", provider="openai") as call:
            call.record(RESPONSE)
        return {"answer": "ok"}

    return app


def send_requests(url: str, count: int) -> list[int]:
    with (
        httpx.Client(base_url=url, timeout=10.0) as client,
        ThreadPoolExecutor(max_workers=8) as executor,
    ):
        return list(
            executor.map(lambda _: client.post("/chat").status_code, [0] * count)
        )


def test_blocked_sink_never_delays_requests(
    observed: Observed, blocked_sink: BlockingHandler
) -> None:
    with run_uvicorn_in_thread(create_app()) as url:
        statuses = send_requests(url, REQUESTS)
        released_before_end = blocked_sink.release.is_set()
        blocked_sink.release.set()
        assert llmobs_core.flush(timeout=30)

    dropped = observed.sample("llmobs_events_dropped_total", emitter="jsonlog")
    assert statuses == [200] * REQUESTS
    assert not released_before_end
    assert dropped is not None
    assert dropped > 0
    # The writer thread holds one event in the blocked handler and the queue
    # holds QUEUE_SIZE more; every one of them is written after the release.
    assert len(blocked_sink.lines) >= QUEUE_SIZE
    assert len(blocked_sink.lines) + dropped == REQUESTS
    assert observed.sample("llm_requests_total") == REQUESTS


def test_sigterm_writes_every_event(tmp_path: Path) -> None:
    events_path = tmp_path / "events.jsonl"
    env = {"LLMOBS_HASH_KEY": TEST_HASH_KEY}
    with (
        fake_provider_process() as provider_url,
        fastapi_gateway_process(
            provider_url, events_path, env=env, stop_timeout=STOP_TIMEOUT_SECONDS
        ) as (url, process),
    ):
        with httpx.Client(base_url=url, timeout=10.0) as client:
            statuses = [
                client.post(
                    "/api/chat/assistant", json={"message": f"Export {index}?"}
                ).status_code
                for index in range(SHUTDOWN_REQUESTS)
            ]
        stop_process(process, STOP_TIMEOUT_SECONDS)

    lines = events_path.read_text(encoding="utf-8").splitlines()
    assert statuses == [200] * SHUTDOWN_REQUESTS
    assert process.returncode == -signal.SIGTERM
    assert len(lines) == SHUTDOWN_REQUESTS
    assert all(isinstance(json.loads(line), dict) for line in lines)
