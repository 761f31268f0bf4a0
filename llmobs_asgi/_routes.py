"""Route templates of routed ASGI requests, read from Starlette and FastAPI.

A template is made of three parts. The first is the root path the request
had when llmobs started it: the server's ``root_path``, or the prefix of a
mount that llmobs runs under. Then come the templates of the mounts the router
went through (``/tenants/{tenant}``), and last the matched route's
``path_format``. An app mounted without routes of its own (a plain ASGI app,
``StaticFiles``) ends in ``/{path}``, as in the mount's ``path_format``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.routing import Mount, Router
from starlette.types import Scope

_iter_route_contexts: Callable[[list[Any]], Iterable[Any]] | None
try:
    from fastapi.routing import iter_route_contexts as _iter_route_contexts
except ImportError:  # FastAPI not installed, or older than 0.137.2
    _iter_route_contexts = None

__all__ = ["RouteResolver"]

logger = logging.getLogger(__name__)

MOUNT_SUFFIX = "/{path}"
"""End of a ``Mount.path_format``: the part the mounted app routes itself."""

_MAX_MOUNT_DEPTH = 16
_MAX_CACHED_PREFIXES = 1024


@dataclass(frozen=True, slots=True)
class _MountMatch:
    """Template of the mounts a request went through, and the last of them."""

    template: str
    last: Any = None


_NO_MOUNT = _MountMatch("")


class RouteResolver:
    """Resolve the route template of requests that one middleware observes.

    Attributes:
        router: The router of the wrapped app, used to find the templates of
            mounts; set by the middleware once it has found it.
    """

    def __init__(self) -> None:
        self.router: Router | None = None
        # Mount prefixes without path parameters, which are their own
        # template: a bounded set, unlike prefixes with parameter values.
        self._static_prefixes: dict[str, _MountMatch] = {}

    def template(self, scope: Scope, base_path: str) -> str | None:
        """Return the route template of a request the app has routed, or None.

        Never raises: a failure to resolve is logged at DEBUG and gives None,
        so it cannot change the response.

        Args:
            scope: The request's scope after routing.
            base_path: ``scope["root_path"]`` when llmobs started the request.
        """
        try:
            return self._template(scope, base_path)
        except Exception:
            logger.debug("resolving the route template failed", exc_info=True)
            return None

    def _template(self, scope: Scope, base_path: str) -> str | None:
        root_path: str = scope.get("root_path", "")
        route = scope.get("route")
        if not root_path and not base_path and "fastapi" not in scope:
            # No root path, no mount and no FastAPI route context: the
            # matched route's own template, as the general case finds it.
            path_format = getattr(route, "path_format", None)
            if isinstance(path_format, str) and not isinstance(route, Mount):
                return path_format or "/"
        if root_path.startswith(base_path):
            prefix = root_path[len(base_path) :]
        else:
            base_path, prefix = "", root_path
        mounts = self._mounts_for(prefix, scope, base_path)
        leaf = _route_template(scope, route)
        if leaf is None:
            last = mounts.last
            if last is None and isinstance(route, Mount):
                last = route
            if last is None or getattr(last, "routes", None):
                return None
            leaf = MOUNT_SUFFIX
        return (base_path.rstrip("/") + mounts.template + leaf) or "/"

    def _mounts_for(self, prefix: str, scope: Scope, base_path: str) -> _MountMatch:
        if not prefix:
            return _NO_MOUNT
        cached = self._static_prefixes.get(prefix)
        if cached is not None:
            return cached
        router = self.router
        if router is None and not base_path:
            router = scope.get("router")
        routes = getattr(router, "routes", None) or ()
        found = _search_mounts(routes, prefix + "/", 0)
        if found is None:
            # Unknown structure: the concrete prefix, as Starlette reports it.
            return _MountMatch(prefix)
        if found.template == prefix and len(self._static_prefixes) < (
            _MAX_CACHED_PREFIXES
        ):
            self._static_prefixes[prefix] = found
        return found


def _route_template(scope: Scope, route: object) -> str | None:
    """Return the matched route's template, or None for a mount or no route."""
    # NOTE: FastAPI 0.137 and later set scope["route"] only for its own
    # routes, so a Starlette route added with add_route gives None here.
    if route is None or isinstance(route, Mount):
        return None
    effective = _fastapi_included_route(scope, route) or route
    path_format = getattr(effective, "path_format", None)
    return path_format if isinstance(path_format, str) else None


def _fastapi_included_route(scope: Scope, route: object) -> object | None:
    """Return the route as included with its router prefixes, if FastAPI did.

    FastAPI 0.137 and later keep routes added with ``include_router`` in
    their router and put that unprefixed route in ``scope["route"]``. The
    prefixed form is the effective route context, which FastAPI leaves in
    ``scope["fastapi"]["effective_route_context"]`` (its own telemetry reads
    it there too).
    """
    state = scope.get("fastapi")
    if not isinstance(state, dict):
        return None
    context: object = state.get("effective_route_context")
    if context is None or getattr(context, "original_route", None) is not route:
        return None
    starlette_route: object = getattr(context, "starlette_route", None)
    return starlette_route or context


def _search_mounts(
    routes: Iterable[object], remaining: str, depth: int
) -> _MountMatch | None:
    """Return the template of the mounts that consumed ``remaining``.

    ``remaining`` is the mount prefix plus ``/``. Mounts are tried in route
    order, as the router tried them.
    """
    if depth >= _MAX_MOUNT_DEPTH:
        return None
    for mount in _mounts_in(routes):
        match = mount.path_regex.match(remaining)
        if match is None:
            continue
        rest = "/" + match.group("path")
        head = mount.path_format.removesuffix(MOUNT_SUFFIX)
        if rest == "/":
            return _MountMatch(head, mount)
        inner = _search_mounts(getattr(mount, "routes", ()), rest, depth + 1)
        if inner is not None:
            return _MountMatch(head + inner.template, inner.last)
    return None


def _mounts_in(routes: Iterable[object]) -> Iterator[Any]:
    """Yield the mounts among ``routes``.

    Mounts inside FastAPI included routers follow, with the router prefixes
    applied.
    """
    routes = list(routes)
    direct = [route for route in routes if isinstance(route, Mount)]
    yield from direct
    if _iter_route_contexts is None or not any(
        hasattr(route, "original_router") for route in routes
    ):
        return
    for context in _iter_route_contexts(routes):
        mount = context.original_route
        if isinstance(mount, Mount) and all(mount is not seen for seen in direct):
            yield context
