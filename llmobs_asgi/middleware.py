"""Pure ASGI middleware that opens the llmobs request scope."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from asgiref.compatibility import guarantee_single_callable
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmobs_asgi._interop import HANDOFF_KEY, AppChain, scan_app
from llmobs_asgi._routes import RouteResolver
from llmobs_core import shutdown
from llmobs_core.server import (
    HeaderNames,
    ServerRequest,
    ServerSettings,
)

__all__ = ["LLMObsMiddleware"]

SCOPE_KEY = "llmobs.request"
"""Scope key set while an ``LLMObsMiddleware`` handles the request; a second
copy of the middleware in the same stack finds it and passes through."""


class LLMObsMiddleware:
    """Give every HTTP request llmobs ids, context and a request span.

    Reads the request headers (request id, ``traceparent``/``tracestate``,
    tenant, tier, user, session, platform, app version, region; names set by
    ``headers``). To name the route, it reads ``scope["root_path"]``,
    ``scope["route"]`` and FastAPI's effective route in ``scope["fastapi"]``
    after routing. Writes the ``X-Request-ID`` response header (replacing any
    the app set), the scope key ``"llmobs.request"`` (the ``ServerRequest``),
    and the context variables ``llmobs_request`` and ``llmobs_feature`` for
    the duration of the request.

    At the first request it looks for a known instrumentation in the app (see
    ``llmobs_asgi._interop``). If it finds one, it replaces that
    instrumentation's ``app`` (a FastAPI app's ``middleware_stack``) once
    with a ``HandoffApp``, and for each request sets the scope key
    ``"llmobs.handoff"`` until the ``HandoffApp`` starts the request.

    The request span is a SERVER span, or an INTERNAL child when another
    instrumentation (FastAPI's or Starlette's built-in OpenTelemetry support,
    or the contrib ASGI middleware) already made a SERVER span current,
    including one that runs inside this middleware, where the ``HandoffApp``
    starts the request. The span ends when the last response body message is
    sent, so streamed responses are timed in full and background tasks are
    not. ``lifespan`` and ``websocket`` scopes pass through untouched.

    Args:
        app: The ASGI app to wrap.
        headers: Request header names; ``HeaderNames()`` by default.
        features: Map of path pattern (shell wildcards) to feature name.
        excluded_paths: Path patterns passed through untouched.
        region: Region for requests without a region header.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        headers: HeaderNames | None = None,
        features: Mapping[str, str] | None = None,
        excluded_paths: Sequence[str] = (),
        region: str | None = None,
    ) -> None:
        self.app: ASGIApp = guarantee_single_callable(app)  # type: ignore[no-untyped-call]
        self.settings = ServerSettings(
            headers=headers,
            features=features,
            excluded_paths=excluded_paths,
            region=region,
        )
        self.request_id_header = self.settings.headers.request_id.encode("latin-1")
        self.routes = RouteResolver()
        self._chain: AppChain | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _flush_before_shutdown_complete(send))
            return
        if (
            scope["type"] != "http"
            or SCOPE_KEY in scope
            or HANDOFF_KEY in scope
            or self.settings.is_excluded(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        if not self._hands_off():
            await self.observe(scope, receive, send, self.app)
            return

        # The HandoffApp under the instrumentation starts the request.
        scope[HANDOFF_KEY] = self
        try:
            await self.app(scope, receive, send)
        finally:
            scope.pop(HANDOFF_KEY, None)

    def _hands_off(self) -> bool:
        """Return whether requests start in a ``HandoffApp`` further in.

        Scans the app at the first request, and again if a handoff found
        before is no longer reached. Without a handoff, it reads one flag.
        """
        chain = self._chain
        if chain is None or (chain.handoff is not None and not chain.is_current()):
            chain = self._chain = scan_app(self)
            self.routes.router = chain.router
        return chain.handoff is not None

    async def observe(
        self, scope: Scope, receive: Receive, send: Send, app: ASGIApp
    ) -> None:
        """Serve one HTTP request through ``app`` as an llmobs request."""
        request = ServerRequest.start(
            self.settings,
            method=scope["method"],
            path=scope["path"],
            scheme=scope.get("scheme", "http"),
            headers=_carrier(scope["headers"], self.settings.read_headers()),
        )
        scope[SCOPE_KEY] = request
        exchange = _Exchange(request, scope, receive, send, self)
        try:
            await app(scope, exchange.receive, exchange.send)
        # NOTE: the 500 that Starlette's ServerErrorMiddleware sends for this
        # exception is sent from outside this middleware, without X-Request-ID.
        except BaseException as error:
            if not request.finished:
                cancelled = isinstance(error, asyncio.CancelledError)
                request.finish(
                    status_code=exchange.status_code,
                    route=exchange.route(),
                    error=None if cancelled else error,
                    client_closed=exchange.disconnected or cancelled,
                )
            raise
        else:
            # Usually the last body message finished the request already,
            # and resolving the route again would be wasted work.
            if not request.finished:
                request.finish(
                    status_code=exchange.status_code,
                    route=exchange.route(),
                    client_closed=exchange.disconnected,
                )
        finally:
            del scope[SCOPE_KEY]
            request.close()


class _Exchange:
    """The ``receive`` and ``send`` that the app gets for one request.

    They record the response status, the end of the response and a client
    disconnect, set the request id header, and finish the request when the
    last response message has been sent. One object with two bound methods
    costs fewer allocations per request than two closures and their cells.
    """

    __slots__ = (
        "_base_path",
        "_middleware",
        "_receive",
        "_request",
        "_request_id",
        "_scope",
        "_send",
        "_trailers",
        "disconnected",
        "status_code",
    )

    def __init__(
        self,
        request: ServerRequest,
        scope: Scope,
        receive: Receive,
        send: Send,
        middleware: LLMObsMiddleware,
    ) -> None:
        self._request = request
        self._scope = scope
        self._receive = receive
        self._send = send
        self._middleware = middleware
        self._request_id = (request.state.request_id or "").encode("latin-1")
        self._base_path: str = scope.get("root_path", "")
        self._trailers = False
        self.status_code: int | None = None
        self.disconnected = False

    def route(self) -> str | None:
        """Return the route template of the request, once routed."""
        return self._middleware.routes.template(self._scope, self._base_path)

    async def receive(self) -> Message:
        """Receive a message from the server, noting a disconnect."""
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        """Send a message to the server, and finish the request after the last one."""
        kind = message["type"]
        if kind == "http.response.start":
            self.status_code = message["status"]
            self._trailers = message.get("trailers", False)
            message = _with_request_id(
                message, self._middleware.request_id_header, self._request_id
            )
            ends = False
        elif kind == "http.response.body":
            ends = not self._trailers and not message.get("more_body", False)
        else:
            ends = _ends_other(message)
        request = self._request
        if ends and request.outer_span is not None:
            request.annotate_outer_span()
        try:
            await self._send(message)
        except OSError:
            self.disconnected = True
            raise
        if ends:
            request.finish(status_code=self.status_code, route=self.route())


def _with_request_id(message: Message, name: bytes, request_id: bytes) -> Message:
    """Set the request id header on a response start message, in place.

    Starlette's own middlewares change the message the same way. A header
    list is changed in place; any other iterable is replaced by a list.
    """
    headers = message.get("headers")
    if type(headers) is not list:
        headers = message["headers"] = list(headers or ())
    for key, _ in headers:
        if key.lower() == name:
            headers[:] = [(k, v) for k, v in headers if k.lower() != name]
            break
    headers.append((name, request_id))
    return message


def _ends_other(message: Message) -> bool:
    """Return whether a message other than start or body ends the response."""
    kind: str = message["type"]
    if kind == "http.response.trailers":
        return not bool(message.get("more_trailers", False))
    return kind == "http.response.pathsend"


def _carrier(
    raw_headers: Iterable[tuple[bytes, bytes]], names: frozenset[str] | None
) -> dict[str, str]:
    """Decode the ASGI headers named in ``names`` (all if None).

    Returns a mapping with lower-case names, as ``carrier_from_pairs`` makes.
    Other headers are not decoded.
    """
    carrier: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        if names is not None and name not in names:
            continue
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        if name in carrier:
            value = f"{carrier[name]},{value}"
        carrier[name] = value
    return carrier


def _flush_before_shutdown_complete(send: Send) -> Send:
    """Wrap a lifespan ``send`` to end open calls and write queued events first.

    Servers may exit right after ``lifespan.shutdown.complete``: uvicorn 0.55
    re-raises the signal that stopped it, which skips ``atexit``. Calls whose
    streams are still open (in a background thread, say) end as cancelled.
    """

    async def send_after_flush(message: Message) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            await asyncio.to_thread(shutdown)
        await send(message)

    return send_after_flush
