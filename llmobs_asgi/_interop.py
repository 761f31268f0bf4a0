"""Start llmobs requests inside a server instrumentation found in the wrapped app.

An OpenTelemetry HTTP server instrumentation makes a SERVER span. When one
runs inside ``LLMObsMiddleware``, its span is not current yet when llmobs
starts a request, so llmobs would make a second SERVER span. At its first
request the middleware therefore follows its app inward, through each
middleware's ``app`` attribute and each Starlette app's ``middleware_stack``,
up to the router. If it meets a known instrumentation, it inserts a
``HandoffApp`` as the innermost one's app and starts every request there, so
the instrumentation's span is current and llmobs makes its INTERNAL child, as
when the instrumentation runs outside llmobs.

Known instrumentations: the contrib ``opentelemetry.instrumentation.asgi``
middleware (also what ``FastAPIInstrumentor`` installs), Starlette's
``starlette.middleware.opentelemetry`` middleware, and a FastAPI app's built-in
telemetry, which runs in ``FastAPI.__call__`` around its ``middleware_stack``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from starlette.applications import Starlette
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HANDOFF_KEY", "AppChain", "HandoffApp", "RequestObserver", "scan_app"]

logger = logging.getLogger(__name__)

HANDOFF_KEY = "llmobs.handoff"
"""Scope key naming the middleware that handed the request to its
``HandoffApp``. The ``HandoffApp`` removes it when it starts the request."""

_SERVER_MIDDLEWARES = frozenset(
    {
        ("opentelemetry.instrumentation.asgi", "OpenTelemetryMiddleware"),
        ("starlette.middleware.opentelemetry", "OpenTelemetryMiddleware"),
    }
)
"""Module and class name of each known instrumentation middleware. Compared by
name, so neither package has to be installed."""

_MAX_DEPTH = 64
"""Maximum number of links followed. A longer chain is searched that far."""


class RequestObserver(Protocol):
    """The middleware that starts and ends llmobs requests."""

    async def observe(
        self, scope: Scope, receive: Receive, send: Send, app: ASGIApp
    ) -> None:
        """Serve one request through ``app`` as an llmobs request."""


class HandoffApp:
    """ASGI app inserted under a server instrumentation.

    Starts the llmobs request for each request that its owner handed off
    (``scope["llmobs.handoff"]`` is the owner) and passes every other
    request to ``app`` untouched.

    Args:
        app: The instrumentation's previous inner app.
        owner: The middleware whose requests it starts.
    """

    def __init__(self, app: ASGIApp, owner: RequestObserver) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the owner's request, or pass the request through."""
        if scope.get(HANDOFF_KEY) is not self.owner:
            await self.app(scope, receive, send)
            return
        del scope[HANDOFF_KEY]
        await self.owner.observe(scope, receive, send, self.app)


@dataclass(frozen=True, slots=True)
class _Link:
    """One step inward: ``holder.attribute`` was ``child`` when scanned."""

    holder: object
    attribute: str
    child: object

    def holds(self) -> bool:
        return getattr(self.holder, self.attribute, None) is self.child


@dataclass(frozen=True, slots=True)
class AppChain:
    """Result of one scan of a middleware's app.

    Attributes:
        router: The router at the end of the chain, or None if the chain ends
            elsewhere (a plain ASGI app, or a wrapper without ``app``).
        handoff: The ``HandoffApp`` that starts requests, or None if no known
            instrumentation is inside the middleware.
    """

    router: Router | None
    handoff: HandoffApp | None
    _links: tuple[_Link, ...] = ()

    def is_current(self) -> bool:
        """Return whether the chain still leads to ``handoff``.

        It stops doing so if an app rebuilds its middleware stack or an
        attribute on the way is replaced.
        """
        return all(link.holds() for link in self._links)


def scan_app(middleware: RequestObserver) -> AppChain:
    """Find the router and any known instrumentation inside ``middleware``.

    Inserts a ``HandoffApp`` under the innermost instrumentation found, unless
    one for this middleware is already there. An exception on an unexpected
    object is logged, and the chain returned has no handoff.
    """
    try:
        links, target, router = _follow(middleware)
        if target is None:
            return AppChain(router, None)
        return _insert_handoff(middleware, links[: target + 1], router)
    except Exception:
        logger.warning(
            "scanning the app inside LLMObsMiddleware failed; requests start "
            "where the middleware runs",
            exc_info=True,
        )
        return AppChain(None, None)


def _follow(start: object) -> tuple[list[_Link], int | None, Router | None]:
    """Follow the app chain inward from ``start``.

    Returns the links followed, the index of the link out of the innermost
    known instrumentation (or None), and the router that ends the chain.
    """
    # NOTE: routes are not followed, so an instrumentation inside a mounted
    # app is not found. One that always makes a SERVER span then makes two.
    links: list[_Link] = []
    target: int | None = None
    node = start
    seen = {id(node)}
    while len(links) < _MAX_DEPTH:
        if isinstance(node, Router):
            return links, target, node
        attribute = _inner_attribute(node)
        if attribute is None:
            break
        child = _inner_app(node, attribute)
        if child is None or id(child) in seen:
            break
        if node is not start and _is_server_instrumentation(node):
            target = len(links)
        links.append(_Link(node, attribute, child))
        seen.add(id(child))
        node = child
    return links, target, None


def _inner_attribute(node: object) -> str | None:
    if isinstance(node, Starlette):
        return "middleware_stack"
    if callable(getattr(node, "app", None)):
        return "app"
    return None


def _inner_app(node: object, attribute: str) -> object:
    child = getattr(node, attribute)
    if child is None and isinstance(node, Starlette):
        # Starlette builds its stack at the first call; build it now, as that
        # call would, so the scan can see inside it.
        node.middleware_stack = child = node.build_middleware_stack()
    return child


def _is_server_instrumentation(node: object) -> bool:
    if isinstance(node, Starlette):
        # FastAPI with built-in telemetry (0.165 and later) opens its SERVER
        # span in FastAPI.__call__, around the middleware stack.
        return getattr(node, "_native_telemetry", None) is not None
    kind = type(node)
    return (kind.__module__, kind.__qualname__) in _SERVER_MIDDLEWARES


def _insert_handoff(
    owner: RequestObserver, links: list[_Link], router: Router | None
) -> AppChain:
    last = links[-1]
    inner = last.child
    if isinstance(inner, HandoffApp) and inner.owner is owner:
        handoff = inner
    else:
        handoff = HandoffApp(inner, owner)  # type: ignore[arg-type]
        setattr(last.holder, last.attribute, handoff)
        logger.debug(
            "LLMObsMiddleware starts requests inside %s", type(last.holder).__name__
        )
    links[-1] = _Link(last.holder, last.attribute, handoff)
    return AppChain(router, handoff, tuple(links))
