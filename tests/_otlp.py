"""An OTLP/HTTP trace receiver for tests, served by uvicorn on a loopback port.

It accepts ``POST /v1/traces`` with an ``application/x-protobuf`` body
(optionally gzip- or deflate-compressed), decodes it as an
``ExportTraceServiceRequest``, stores every span and responds with an empty
``ExportTraceServiceResponse``, as an OpenTelemetry Collector does on success.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests._servers import run_uvicorn_in_thread

TRACES_PATH = "/v1/traces"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
# The encodings the OTLP/HTTP exporter sends (OTEL_EXPORTER_OTLP_COMPRESSION).
DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "identity": bytes,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One decoded span.

    Attributes:
        name: Span name.
        trace_id: Trace id, 32 lower-case hex digits.
        span_id: Span id, 16 lower-case hex digits.
        parent_span_id: Parent's span id, or None for a root span.
        kind: ``SERVER``, ``CLIENT``, ``INTERNAL``, ``PRODUCER``,
            ``CONSUMER`` or ``UNSPECIFIED``.
        status: ``UNSET``, ``OK`` or ``ERROR``.
        attributes: Span attributes as plain Python values.
        resource: Resource attributes of the batch the span came in.
        scope: Name of the instrumentation scope (the tracer's name).
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    status: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str


@dataclass(frozen=True, slots=True)
class ReceivedExport:
    """One accepted export request.

    Attributes:
        headers: Request headers, names in lower case.
        span_count: Number of spans in the request.
    """

    headers: dict[str, str]
    span_count: int


class OTLPReceiver:
    """Store the spans of the OTLP/HTTP export requests it receives.

    Thread-safe: the server thread adds spans while the test reads them.
    """

    def __init__(self) -> None:
        self.url = ""
        self._condition = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self._exports: list[ReceivedExport] = []
        self.app = Starlette(
            routes=[Route(TRACES_PATH, self._export, methods=["POST"])]
        )

    @property
    def spans(self) -> list[ReceivedSpan]:
        """A copy of the spans received so far, in arrival order."""
        with self._condition:
            return list(self._spans)

    @property
    def exports(self) -> list[ReceivedExport]:
        """A copy of the export requests accepted so far."""
        with self._condition:
            return list(self._exports)

    def wait_for_spans(
        self,
        predicate: Callable[[list[ReceivedSpan]], bool],
        timeout: float = 10.0,
    ) -> list[ReceivedSpan]:
        """Wait until ``predicate(spans)`` is true and return the spans.

        Raises:
            TimeoutError: If the predicate is still false after ``timeout``
                seconds.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self._spans):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [span.name for span in self._spans]
                    raise TimeoutError(
                        f"spans not received within {timeout} s; received {names}"
                    )
                self._condition.wait(remaining)
            return list(self._spans)

    async def _export(self, request: Request) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip()
        if media_type != PROTOBUF_CONTENT_TYPE:
            return Response(f"expected {PROTOBUF_CONTENT_TYPE}\n", status_code=415)
        encoding = request.headers.get("content-encoding", "identity").lower()
        decompress = DECOMPRESSORS.get(encoding)
        if decompress is None:
            return Response(f"unsupported Content-Encoding {encoding!r}\n", 415)
        body = await request.body()
        try:
            message = ExportTraceServiceRequest.FromString(decompress(body))
        except (OSError, EOFError, zlib.error, DecodeError) as error:
            return Response(f"invalid request body: {error}\n", status_code=400)
        spans = list(decode_spans(message))
        export = ReceivedExport(dict(request.headers.items()), len(spans))
        with self._condition:
            self._spans.extend(spans)
            self._exports.append(export)
            self._condition.notify_all()
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type=PROTOBUF_CONTENT_TYPE,
        )


@contextlib.contextmanager
def run_otlp_receiver() -> Iterator[OTLPReceiver]:
    """Serve a new ``OTLPReceiver`` on a free 127.0.0.1 port until exit.

    The receiver's ``url`` is its base URL, the value for
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; the traces endpoint is ``url`` plus
    ``/v1/traces``.
    """
    receiver = OTLPReceiver()
    with run_uvicorn_in_thread(receiver.app) as url:
        receiver.url = url
        yield receiver


def decode_spans(message: ExportTraceServiceRequest) -> Iterator[ReceivedSpan]:
    """Yield the spans of an export request with their resource attributes."""
    for resource_spans in message.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() or None,
                    kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                    status=Status.StatusCode.Name(span.status.code).removeprefix(
                        "STATUS_CODE_"
                    ),
                    attributes=key_values(span.attributes),
                    resource=resource,
                    scope=scope_spans.scope.name,
                )


def key_values(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Convert OTLP key-value pairs to a dictionary of plain Python values."""
    return {pair.key: any_value(pair.value) for pair in pairs}


def any_value(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to a plain Python value (None if empty)."""
    field = value.WhichOneof("value")
    if field is None:
        return None
    if field == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if field == "kvlist_value":
        return key_values(value.kvlist_value.values)
    return getattr(value, field)
