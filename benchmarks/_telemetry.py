"""Telemetry back ends shared by the benchmarks: real SDK, discarded output.

Spans go through the OpenTelemetry SDK's ``BatchSpanProcessor`` to an
exporter that only counts them. llmobs events go through the default JSON
log emitter and its background writer to a handler that formats each record
and discards it, with the ``llmobs.events`` logger at INFO.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core.emitters import EVENTS_LOGGER

HASH_KEY = "benchmark-hash-key-0123456789abcdef"

# Large enough that no benchmark batch fills the queue between two flushes,
# so no variant gets cheaper by dropping spans. The SDK default is 2048.
SPAN_QUEUE_SIZE = 65_536


class CountingSpanExporter(SpanExporter):
    """Span exporter that counts the spans it receives and drops them."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Count the spans."""
        with self._lock:
            self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Do nothing: the exporter has no resources to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Return True: nothing is buffered."""
        return True


class DiscardHandler(logging.Handler):
    """Logging handler that formats each record, as a real one does, and drops it."""

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record and discard the text."""
        self.format(record)


@dataclass
class Telemetry:
    """The tracer provider, span exporter and registry of one benchmark process.

    Attributes:
        provider: SDK tracer provider, never set as the global provider.
        exporter: The exporter behind the provider's batch processor.
        registry: Private Prometheus registry of the llmobs metrics.
    """

    provider: TracerProvider
    exporter: CountingSpanExporter
    registry: CollectorRegistry

    def flush(self) -> None:
        """Wait until queued llmobs events and spans are written and exported."""
        llmobs_core.flush()
        self.provider.force_flush()


def set_up_telemetry() -> Telemetry:
    """Build the tracer provider and configure llmobs with its default emitters.

    The global tracer provider stays unset, so FastAPI's built-in telemetry
    stays off unless a benchmark turns it on; every instrumentation gets the
    provider explicitly.
    """
    exporter = CountingSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=SPAN_QUEUE_SIZE)
    )
    registry = CollectorRegistry()
    discard_events(EVENTS_LOGGER)
    llmobs_core.configure(
        registry=registry, tracer_provider=provider, hash_key=HASH_KEY
    )
    return Telemetry(provider=provider, exporter=exporter, registry=registry)


def discard_events(logger_name: str) -> logging.Logger:
    """Enable INFO on a logger and send its records to a ``DiscardHandler``."""
    logger = logging.getLogger(logger_name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = DiscardHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
