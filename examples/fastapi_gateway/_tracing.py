"""OpenTelemetry SDK set-up of the example gateways.

Finished spans go in batches to a JSON lines file, to an OTLP/HTTP endpoint
named by the standard ``OTEL_EXPORTER_OTLP_*`` environment variables, or to
both. The examples export only to loopback addresses.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

SERVICE_NAME = "llmobs-example-gateway"
"""``service.name`` of the spans unless ``OTEL_SERVICE_NAME`` or
``OTEL_RESOURCE_ATTRIBUTES`` sets one."""

OTLP_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
# The traces variable wins over the general one, as in the OTLP exporter.
OTLP_PROTOCOL_ENVS = (
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
)
OTLP_HTTP_PROTOBUF = "http/protobuf"
OTLP_TRACES_PATH = "/v1/traces"


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


def otlp_traces_endpoint() -> str | None:
    """Check the OTLP environment variables and return the traces URL.

    The URL is ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, or else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``/v1/traces`` appended: the rule the
    OTLP/HTTP span exporter applies when it reads the same variables.

    Returns:
        The URL spans are sent to, or None if neither variable is set.

    Raises:
        ValueError: If an endpoint variable is not an http(s) URL on a
            loopback IP address, or the OTLP protocol variable names a
            protocol other than ``http/protobuf``.
    """
    traces_endpoint = os.environ.get(OTLP_TRACES_ENDPOINT_ENV, "")
    base_endpoint = os.environ.get(OTLP_ENDPOINT_ENV, "")
    # Both are checked, even when the traces variable wins, so that the
    # examples never run with a remote endpoint in their environment.
    for name, value in (
        (OTLP_TRACES_ENDPOINT_ENV, traces_endpoint),
        (OTLP_ENDPOINT_ENV, base_endpoint),
    ):
        if value:
            _check_loopback_endpoint(name, value)
    if not traces_endpoint and not base_endpoint:
        return None
    _check_protocol()
    if traces_endpoint:
        return traces_endpoint
    return base_endpoint.removesuffix("/") + OTLP_TRACES_PATH


def gateway_tracer_provider(
    spans_file: Path | None, *, otlp: bool
) -> TracerProvider | None:
    """Create the tracer provider of an example gateway.

    Each destination gets its own ``BatchSpanProcessor``. The OTLP exporter
    reads its endpoint, headers, compression and timeout from the
    ``OTEL_EXPORTER_OTLP_*`` variables itself; check them first with
    ``otlp_traces_endpoint``. The batch processors read ``OTEL_BSP_*``.

    The provider is not made global. Call its ``force_flush()`` or
    ``shutdown()`` before the process exits, or the last batch is lost.

    Args:
        spans_file: File to append finished spans to as JSON lines, or None.
        otlp: Whether to also export spans over OTLP/HTTP.

    Returns:
        The provider, or None if there is nowhere to export to.

    Raises:
        RuntimeError: If ``otlp`` is true and
            ``opentelemetry-exporter-otlp-proto-http`` is not installed.
    """
    if spans_file is None and not otlp:
        return None
    provider = TracerProvider(resource=gateway_resource())
    if spans_file is not None:
        provider.add_span_processor(
            BatchSpanProcessor(JsonLinesSpanExporter(spans_file))
        )
    if otlp:
        provider.add_span_processor(BatchSpanProcessor(_otlp_span_exporter()))
    return provider


def gateway_resource() -> Resource:
    """Return the resource of the gateway's spans.

    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` win over the
    default ``service.name``, ``SERVICE_NAME``. ``Resource.create`` alone would
    let the default win.
    """
    default = Resource.create({"service.name": SERVICE_NAME})
    return default.merge(OTELResourceDetector().detect())


def _otlp_span_exporter() -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
    except ImportError as error:
        raise RuntimeError(
            "OTLP export needs the opentelemetry-exporter-otlp-proto-http "
            "package. Install it, or unset OTEL_EXPORTER_OTLP_ENDPOINT and "
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."
        ) from error
    return OTLPSpanExporter()


def _check_loopback_endpoint(name: str, value: str) -> None:
    parts = urllib.parse.urlsplit(value)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        address = None
    if parts.scheme not in ("http", "https") or address is None:
        raise ValueError(
            f"{name}={value!r} is not an http(s) URL with an IP address, for "
            "example http://127.0.0.1:4318"
        )
    if not address.is_loopback:
        raise ValueError(
            f"{name}={value!r} is not on a loopback address. The example "
            "gateways export spans only to a collector on this machine, such "
            "as http://127.0.0.1:4318. Run an OpenTelemetry Collector there to "
            "forward them elsewhere."
        )


def _check_protocol() -> None:
    for name in OTLP_PROTOCOL_ENVS:
        value = os.environ.get(name, "")
        if not value:
            continue
        if value.strip() != OTLP_HTTP_PROTOBUF:
            raise ValueError(
                f"{name}={value!r} is not supported. The example gateways "
                "export spans over OTLP/HTTP with protobuf, so set it to "
                f"{OTLP_HTTP_PROTOBUF} or unset it."
            )
        return
