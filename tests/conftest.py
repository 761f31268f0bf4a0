"""Shared fixtures: a fresh llmobs configuration per test with a real OpenTelemetry
SDK tracer provider, an in-memory span exporter and a private Prometheus registry.

The global tracer provider is never set, because it can be set only once per
process; every component gets its provider explicitly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core import _call
from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core.emitters import EVENTS_LOGGER

TEST_HASH_KEY = "test-hash-key-0123456789abcdef"


class EventCapture(logging.Handler):
    """Collect the JSON lines logged on ``llmobs.events``."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self._lines.append(record.getMessage())

    @property
    def lines(self) -> list[str]:
        """The lines logged so far, after the background writer caught up."""
        assert llmobs_core.flush(timeout=10), "event writer did not catch up"
        return self._lines

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@dataclass
class Observed:
    """What one test's llmobs configuration produced."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    registry: CollectorRegistry
    capture: EventCapture
    config: llmobs_core.Config
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.capture.events

    def span(self, name: str) -> ReadableSpan:
        matches = [span for span in self.spans if span.name == name]
        assert len(matches) == 1, f"expected one span {name!r}, got {self.names()}"
        return matches[0]

    def names(self) -> list[str]:
        return [span.name for span in self.spans]

    def sample(self, name: str, **labels: str) -> float | None:
        """Return the sum of the samples of ``name`` whose labels include
        ``labels``, or None if there is none."""
        values = [
            sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]
        return sum(values) if values else None


def span_times(span: ReadableSpan) -> tuple[int, int]:
    """Return a finished span's start and end, in nanoseconds since the epoch."""
    assert span.start_time is not None
    assert span.end_time is not None
    return span.start_time, span.end_time


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Observed]:
    # Events queued by earlier tests are written later: finish them before
    # capturing, so they are not counted here.
    assert llmobs_core.flush(timeout=10)
    # The call handle's warnings are rate-limited per kind. Fresh ones per
    # test let each test get the warnings of its own calls.
    monkeypatch.setattr(_call, "_warning", RateLimitedWarning(_call.logger))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    config = llmobs_core.configure(
        tracer_provider=provider, registry=registry, hash_key=TEST_HASH_KEY
    )
    capture = EventCapture()
    logger = logging.getLogger(EVENTS_LOGGER)
    previous_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        yield Observed(provider, exporter, registry, capture, config)
    finally:
        llmobs_core.flush(timeout=10)
        logger.removeHandler(capture)
        logger.setLevel(previous_level)
        provider.shutdown()
