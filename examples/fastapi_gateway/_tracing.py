"""OpenTelemetry SDK set-up that writes finished spans to a JSON lines file."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

SERVICE_NAME = "llmobs-example-gateway"


class JsonLinesSpanExporter(SpanExporter):
    """Append each finished span to a file as one JSON object per line.

    Each line has ``name``, ``trace_id`` (32 hex digits), ``span_id`` and
    ``parent_span_id`` (16 hex digits, null for a root), ``parent_is_remote``,
    ``kind``, ``start_time_unix_nano``, ``end_time_unix_nano``, ``status`` and
    ``attributes``.

    Args:
        path: File to append to, created if missing.
    """

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the spans and flush the file."""
        text = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            self._file.write(text)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file. Later exports fail."""
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Return True, because every export flushes the file before it returns."""
        return True


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """Convert a finished span to the dictionary written as one line."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}" if context else None,
        "span_id": f"{context.span_id:016x}" if context else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "parent_is_remote": parent.is_remote if parent else False,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def json_lines_tracer_provider(path: Path) -> TracerProvider:
    """Create a tracer provider that exports spans in batches to ``path``.

    The provider is not made global. Call its ``shutdown()`` before the
    process exits, or the last batch is lost.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path)))
    return provider
