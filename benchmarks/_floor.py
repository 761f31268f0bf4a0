"""A middleware that records one SERVER span per request and does nothing else.

``OneSpanMiddleware`` starts one OpenTelemetry SDK span per HTTP request with
the attributes llmobs sets at the start (method, path, scheme, request id,
feature), makes it current while the app runs, sets the route and status
from the response, and ends it after the last body message. It reads no
header, propagates nothing and writes no response header. The benchmarks run
it as an anchor: the part of llmobs's cost that any middleware with one
recording span per request pays, whatever else it does.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, TracerProvider

Message = dict[str, Any]


class OneSpanMiddleware:
    """ASGI middleware with one recording SERVER span per request and no other work."""

    def __init__(self, app: Any, *, tracer_provider: TracerProvider) -> None:
        self.app = app
        self.tracer = tracer_provider.get_tracer("benchmarks.floor")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one request inside one span."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = self.tracer.start_span(
            scope["method"],
            context=otel_context.Context(),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": scope["method"],
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
                "llmobs.request_id": "0" * 32,
                "llm.feature_name": "bench.hello",
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 0

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get(
                "more_body", False
            ):
                route = getattr(scope.get("route"), "path_format", None) or "/"
                span.update_name(f"{scope['method']} {route}")
                span.set_attributes(
                    {"http.route": route, "http.response.status_code": status}
                )
                span.end()

        try:
            await self.app(scope, receive, send_observed)
        finally:
            otel_context.detach(token)
