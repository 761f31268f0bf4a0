"""The JSON events are written off the request path, through a bounded queue."""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core import call_llm
from llmobs_core.emitters import JsonLogEmitter, PrometheusEmitter
from tests.conftest import TEST_HASH_KEY


class BlockingHandler(logging.Handler):
    """A sink that blocks until released, like a stalled stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.release.wait(timeout=10)
        self.lines.append(record.getMessage())


def blocking_logger(name: str) -> tuple[logging.Logger, BlockingHandler]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = BlockingHandler()
    logger.addHandler(handler)
    return logger, handler


def test_blocked_sink_does_not_block_calls() -> None:
    logger, handler = blocking_logger("test.blocked.events")
    emitter = JsonLogEmitter(logger)
    llmobs_core.configure(emitters=[emitter], hash_key=TEST_HASH_KEY)
    try:
        for _ in range(5):
            with call_llm(model="m"):
                pass
        written_while_blocked = len(handler.lines)
    finally:
        handler.release.set()

    assert written_while_blocked == 0
    assert emitter.flush(timeout=10)
    assert len(handler.lines) == 5
    logger.removeHandler(handler)


def test_full_queue_drops_and_counts() -> None:
    logger, handler = blocking_logger("test.full.events")
    registry = CollectorRegistry()
    prometheus = PrometheusEmitter(registry)
    dropped = prometheus.metrics.events_dropped.labels("jsonlog")
    emitter = JsonLogEmitter(logger, queue_size=3, on_drop=dropped.inc)
    llmobs_core.configure(emitters=[emitter, prometheus], hash_key=TEST_HASH_KEY)
    try:
        for _ in range(10):
            with call_llm(model="m"):
                pass
    finally:
        handler.release.set()
    assert emitter.flush(timeout=10)

    drops = registry.get_sample_value(
        "llmobs_events_dropped_total", {"emitter": "jsonlog"}
    )
    assert drops is not None
    assert len(handler.lines) + drops == 10
    assert len(handler.lines) >= 3
    logger.removeHandler(handler)


def test_flush_writes_everything_queued() -> None:
    logger = logging.getLogger("test.flush.events")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    llmobs_core.configure(emitters=[JsonLogEmitter(logger)], hash_key=TEST_HASH_KEY)

    for _ in range(200):
        with call_llm(model="m"):
            pass
    assert llmobs_core.flush(timeout=10)

    assert len(lines) == 200
    logger.removeHandler(handler)


def test_sink_error_does_not_stop_writer() -> None:
    logger = logging.getLogger("test.failing.events")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    lines: list[str] = []
    calls = {"count": 0}

    class FlakyHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            calls["count"] += 1
            if calls["count"] == 1:
                raise OSError("disk full")
            lines.append(record.getMessage())

        def handleError(self, record: logging.LogRecord) -> None:
            raise

    handler = FlakyHandler()
    logger.addHandler(handler)
    llmobs_core.configure(emitters=[JsonLogEmitter(logger)], hash_key=TEST_HASH_KEY)
    for _ in range(3):
        with call_llm(model="m"):
            pass
    assert llmobs_core.flush(timeout=10)

    assert len(lines) == 2
    logger.removeHandler(handler)
