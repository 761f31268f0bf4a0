"""WSGI middleware that opens the llmobs request scope, for any WSGI app."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from llmobs_core._headers import decode_header
from llmobs_core.server import (
    HeaderNames,
    ServerRequest,
    ServerSettings,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ENVIRON_ERROR_KEY",
    "ENVIRON_KEY",
    "ENVIRON_ROUTE_KEY",
    "LLMObsWSGIMiddleware",
]

logger = logging.getLogger(__name__)

ENVIRON_KEY = "llmobs.request"
"""Environ key holding the request's ``ServerRequest`` while it is served; a
second copy of the middleware finds it and passes the request through."""

ENVIRON_ROUTE_KEY = "llmobs.route"
"""Environ key a framework sets to the matched route template."""

ENVIRON_ERROR_KEY = "llmobs.error"
"""Environ key a framework sets to an exception it turned into a response."""

_ExcInfo = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)


class LLMObsWSGIMiddleware:
    """Give every WSGI request llmobs ids, context and a request span.

    Reads the request headers from the environ (request id,
    ``traceparent``/``tracestate``, tenant, tier, user, session, platform,
    app version, region; names set by ``headers``) and, at the end, the
    environ keys ``llmobs.route`` and ``llmobs.error`` if a framework set
    them. Writes the ``X-Request-ID`` response header (replacing any the app
    set), the environ key ``llmobs.request``, and the llmobs context
    variables until the response is exhausted or closed.

    The request span ends when the server has consumed the last chunk of the
    response or called ``close()`` on it, whichever comes first, exactly
    once. A response closed before its end (the client went away) ends the
    span with ``llmobs.client_closed`` set.

    Args:
        app: The WSGI app to wrap.
        headers: Request header names; ``HeaderNames()`` by default.
        features: Map of path pattern (shell wildcards) to feature name.
        excluded_paths: Path patterns passed through untouched.
        region: Region for requests without a region header.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        headers: HeaderNames | None = None,
        features: Mapping[str, str] | None = None,
        excluded_paths: Sequence[str] = (),
        region: str | None = None,
    ) -> None:
        self.app = app
        self.settings = ServerSettings(
            headers=headers,
            features=features,
            excluded_paths=excluded_paths,
            region=region,
        )
        self._request_id_header = self.settings.headers.request_id

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Serve one request."""
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if ENVIRON_KEY in environ or self.settings.is_excluded(path):
            return self.app(environ, start_response)

        request = ServerRequest.start(
            self.settings,
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            scheme=environ.get("wsgi.url_scheme", "http"),
            headers=headers_from_environ(environ),
        )
        environ[ENVIRON_KEY] = request
        response = _ResponseState(request, environ)
        try:
            body = self.app(environ, self._start_response(start_response, response))
        except BaseException as error:
            response.end(error=error)
            raise

        return ObservedBody(body, response)

    def _start_response(
        self, start_response: StartResponse, response: _ResponseState
    ) -> StartResponse:
        name = self._request_id_header
        request_id = response.request.state.request_id or ""

        def start_observed(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: _ExcInfo | None = None,
        ) -> Callable[[bytes], object]:
            response.status_code = _status_code(status)
            kept = [(key, value) for key, value in headers if key.lower() != name]
            kept.append((name, request_id))
            return start_response(status, kept, exc_info)

        return start_observed


class _ResponseState:
    """State of one response: its request, its status and its once-only end."""

    __slots__ = ("closed", "environ", "request", "status_code")

    def __init__(self, request: ServerRequest, environ: WSGIEnvironment) -> None:
        self.request = request
        self.environ = environ
        self.status_code: int | None = None
        self.closed = False

    def finish(
        self, *, error: BaseException | None = None, client_closed: bool = False
    ) -> None:
        """End the request span; only the first call counts."""
        self.request.finish(
            status_code=self.status_code,
            route=self.environ.get(ENVIRON_ROUTE_KEY),
            error=error or self.environ.get(ENVIRON_ERROR_KEY),
            client_closed=client_closed,
        )

    def end(
        self, *, error: BaseException | None = None, client_closed: bool = False
    ) -> None:
        """End the span if still open, then restore the context, once."""
        try:
            self.finish(error=error, client_closed=client_closed)
        finally:
            if not self.closed:
                self.closed = True
                self.request.close()


class ObservedBody:
    """Response iterable that ends the request when consumed or closed.

    Passes the app's chunks through unchanged and forwards ``close()``.
    """

    __slots__ = ("_body", "_exhausted", "_iterator", "_response")

    def __init__(self, body: Iterable[bytes], response: _ResponseState) -> None:
        self._body = body
        self._response = response
        self._iterator: Iterator[bytes] | None = None
        self._exhausted = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._body)
        try:
            return next(self._iterator)
        except StopIteration:
            # The context is restored here too, not only in close(), so a
            # server (or test client) that never calls close() leaks nothing.
            self._exhausted = True
            self._response.end()
            raise
        except BaseException as error:
            self._response.finish(error=error)
            raise

    def close(self) -> None:
        """Close the app's iterable, then end the request if not yet ended."""
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._response.end(client_closed=not self._exhausted)


def headers_from_environ(environ: WSGIEnvironment) -> dict[str, str]:
    """Return the request headers in an environ, with lower-case names.

    WSGI servers already join repeated headers with commas, as
    ``carrier_from_pairs`` does for ASGI.
    """
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key[:5] == "HTTP_":
            # PEP 3333 servers decode header bytes as Latin-1; undo that.
            if not value.isascii():
                value = decode_header(value.encode("latin-1", "replace"))
            headers[key[5:].replace("_", "-").lower()] = value
        elif key in _BODY_HEADERS and value:
            headers[key.replace("_", "-").lower()] = value
    return headers


_BODY_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _status_code(status: str) -> int | None:
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        logger.debug("unparseable WSGI status %r", status)
        return None
