"""Framework-neutral lifecycle of one server request, shared by the plugins.

A plugin builds one ``ServerSettings`` when it is constructed and, for each
request, calls ``ServerRequest.start`` with the request's method, path and
headers, then ``finish`` once when the response is complete, and ``close``
in a ``finally`` block on the task or thread that called ``start``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD_ORIGINAL,
    HttpRequestMethodValues,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from llmobs_core import _ids
from llmobs_core import _semconv as semconv
from llmobs_core._headers import invalid_trace_headers
from llmobs_core._ids import format_trace_id, is_valid_request_id, new_request_id
from llmobs_core._spans import record_exception_type, start_span
from llmobs_core.config import Config, ensure_configured, get_config
from llmobs_core.context import RequestState, enter_request, exit_request

__all__ = ["HeaderNames", "ServerRequest", "ServerSettings", "carrier_from_pairs"]

logger = logging.getLogger(__name__)

CLIENT_CLOSED_STATUS = 499
"""Status recorded when the client went away before the response ended; the
value nginx uses. It is never sent."""

KNOWN_METHODS = frozenset(
    member.value
    for member in HttpRequestMethodValues
    if member is not HttpRequestMethodValues.OTHER
)
"""HTTP methods recorded as sent. Following the OpenTelemetry HTTP
conventions, any other method is recorded as ``_OTHER`` and names the span
``HTTP``, so a client cannot create span names at will."""


@dataclass(frozen=True, slots=True)
class HeaderNames:
    """Request header names read by the middleware; case-insensitive."""

    request_id: str = "x-request-id"
    tenant_id: str = "x-tenant-id"
    tenant_tier: str = "x-tenant-tier"
    user_id: str = "x-user-id"
    session_id: str = "x-session-id"
    platform: str = "x-platform"
    app_version: str = "x-app-version"
    region: str = "x-region"

    def lowered(self) -> HeaderNames:
        """Return a copy with every name in lower case."""
        return HeaderNames(**{k: v.lower() for k, v in _as_dict(self).items()})


_OPTIONAL_HEADERS = (
    "tenant_id",
    "tenant_tier",
    "session_id",
    "platform",
    "app_version",
    "region",
)
"""``HeaderNames`` fields copied, cleaned, to the ``RequestState`` attribute of
the same name."""

# Longest accepted value of a tenant, session or similar header; longer values
# are cut so a client cannot make events arbitrarily large.
MAX_ATTRIBUTE_LENGTH = 256


class ServerSettings:
    """Per-middleware settings, checked and compiled once.

    Args:
        headers: Header names to read, or None for the defaults.
        features: Map of path pattern to feature name. Patterns use shell
            wildcards (``/api/chat/*``) and are tried in order; the first
            match names the request's feature.
        excluded_paths: Path patterns, in the same syntax, that are passed
            through untouched (health checks, ``/metrics``).
        region: Region to use when the request has no region header.

    Raises:
        TypeError: For a pattern or feature name that is not a string.
        ValueError: For an empty pattern or feature name.
    """

    def __init__(
        self,
        *,
        headers: HeaderNames | None = None,
        features: Mapping[str, str] | None = None,
        excluded_paths: Sequence[str] = (),
        region: str | None = None,
    ) -> None:
        self.headers = names = (headers or HeaderNames()).lowered()
        self.optional_headers = tuple(
            (attribute, getattr(names, attribute)) for attribute in _OPTIONAL_HEADERS
        )
        self.features = tuple(
            (_compile_pattern(pattern, "features"), _check_name(name, pattern))
            for pattern, name in (features or {}).items()
        )
        self.excluded = tuple(
            _compile_pattern(pattern, "excluded_paths") for pattern in excluded_paths
        )
        # One combined pattern is matched per request, in place of one per path.
        self._excluded_match = (
            re.compile("|".join(f"(?:{p.pattern})" for p in self.excluded)).fullmatch
            if self.excluded
            else None
        )
        self.region = region
        self._read_headers: tuple[Config, frozenset[str]] | None = None
        # A configuration error from the environment surfaces at start-up,
        # when the middleware is built, not on the first request.
        ensure_configured()

    def read_headers(self) -> frozenset[str] | None:
        """Return the lower-case names of the headers ``start`` reads.

        None means every header: a propagator other than the W3C ones may
        read headers it does not list. A plugin may leave the other headers
        out of the mapping it passes to ``start``, and skip decoding them.
        """
        config = get_config()
        if not _propagator_reads_w3c_only():
            return None
        cached = self._read_headers
        if cached is not None and cached[0] is config:
            return cached[1]
        names = frozenset((*_as_dict(self.headers).values(), *_W3C_HEADERS)) | {
            config.privacy.debug_header.lower()
        }
        self._read_headers = (config, names)
        return names

    def feature_for(self, path: str) -> str | None:
        """Return the feature mapped to ``path``, or None."""
        for pattern, name in self.features:
            if pattern.fullmatch(path):
                return name
        return None

    def is_excluded(self, path: str) -> bool:
        """Return whether requests to ``path`` are passed through untouched."""
        match = self._excluded_match
        return match is not None and match(path) is not None


class ServerRequest:
    """One request's ids, llmobs context and request span.

    Create with ``start``; not shared between requests.
    """

    __slots__ = (
        "_finished",
        "_generation",
        "_otel_token",
        "_started_with",
        "_tokens",
        "method",
        "outer_span",
        "span",
        "state",
    )

    def __init__(
        self,
        state: RequestState,
        span: Span,
        outer_span: Span | None,
        method: str,
    ) -> None:
        self.state = state
        self.span = span
        self.outer_span = outer_span
        self.method = method
        self._finished = False
        self._generation = _ids.fork_generation
        self._started_with = (state.feature_name, state.tenant_id, state.tenant_tier)
        self._tokens = enter_request(state)
        self._otel_token = otel_context.attach(trace.set_span_in_context(span))

    @classmethod
    def start(
        cls,
        settings: ServerSettings,
        *,
        method: str,
        path: str,
        scheme: str,
        headers: Mapping[str, str],
    ) -> ServerRequest:
        """Start the request: ids, context, and the request span made current.

        Args:
            settings: The plugin's settings.
            method: HTTP method.
            path: URL path, without query string.
            scheme: URL scheme, ``http`` or ``https``.
            headers: Request headers with lower-case names; repeated headers
                joined with ``,`` (see ``carrier_from_pairs``).
        """
        config = get_config()
        state = _state_from_headers(settings, headers, config.hasher)
        state.debug = _debug_allowed(config, headers, state)
        state.feature_name = feature = settings.feature_for(path)
        known = method in KNOWN_METHODS
        span_method = method if known else "HTTP"
        # Attributes known now are passed to start_span. Setting them later
        # takes the span's lock once per call.
        attributes: dict[str, Any] = {
            semconv.HTTP_REQUEST_METHOD: method if known else "_OTHER",
            semconv.URL_PATH: path,
            semconv.URL_SCHEME: scheme,
            semconv.LLMOBS_REQUEST_ID: state.request_id,
        }
        if not known:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = method
        if feature is not None:
            attributes[semconv.LLM_FEATURE_NAME] = feature
        if state.tenant_id is not None:
            attributes[semconv.LLMOBS_TENANT_ID] = state.tenant_id
        if state.tenant_tier is not None:
            attributes[semconv.LLMOBS_TENANT_TIER] = state.tenant_tier
        outer = _active_server_span()
        if outer is not None:
            span = start_span(
                config.tracer, f"llmobs {span_method}", attributes=attributes
            )
        else:
            span = start_span(
                config.tracer,
                span_method,
                context=_parent_context(headers, config, state),
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
        state.trace_id = format_trace_id(span.get_span_context().trace_id)

        request = cls(state, span, outer, span_method)
        if outer is not None:
            request.annotate_outer_span()
        return request

    @property
    def finished(self) -> bool:
        """Whether ``finish`` has run."""
        return self._finished

    def finish(
        self,
        *,
        status_code: int | None,
        route: str | None,
        error: BaseException | None = None,
        client_closed: bool = False,
    ) -> None:
        """End the request span; later calls do nothing.

        Args:
            status_code: The response status sent, or None if none was sent.
            route: The matched route template, for example ``/items/{id}``.
            error: The exception that ended the request, if any.
            client_closed: True if the client disconnected before the end.
        """
        if self._finished:
            return
        self._finished = True
        if self._generation != _ids.fork_generation:
            # A forked child's copy of a request its parent ends.
            return
        span = self.span
        try:
            if span.is_recording():
                self._annotate(span, status_code, route, error, client_closed)
            if self.outer_span is not None:
                self.annotate_outer_span()
        finally:
            span.end()

    def annotate_outer_span(self) -> None:
        """Copy the request id, tenant and feature to the other SERVER span.

        Does nothing without such a span, or once it has ended. Plugins call
        this again just before they forward the last response message,
        because the instrumentation that owns that span may end it while the
        message is sent, before ``finish`` runs.
        """
        outer = self.outer_span
        if outer is not None and outer.is_recording():
            outer.set_attributes(self._request_attributes())

    def close(self) -> None:
        """Restore the context that was current before ``start``."""
        try:
            otel_context.detach(self._otel_token)
        finally:
            exit_request(self._tokens)

    def _annotate(
        self,
        span: Span,
        status_code: int | None,
        route: str | None,
        error: BaseException | None,
        client_closed: bool,
    ) -> None:
        attributes: dict[str, Any] = {}
        if route is not None:
            attributes[semconv.HTTP_ROUTE] = route
            prefix = "llmobs " if self.outer_span is not None else ""
            span.update_name(f"{prefix}{self.method} {route}")
        # The span started with these; application code may have changed
        # them since, through bind_context or a feature scope.
        state = self.state
        started = self._started_with
        # Values changed by the application (bind_context, feature()) may
        # come from its own JSON input.
        text = semconv.attribute_text
        if state.feature_name != started[0] and state.feature_name is not None:
            attributes[semconv.LLM_FEATURE_NAME] = text(state.feature_name)
        if state.tenant_id != started[1] and state.tenant_id is not None:
            attributes[semconv.LLMOBS_TENANT_ID] = text(state.tenant_id)
        if state.tenant_tier != started[2] and state.tenant_tier is not None:
            attributes[semconv.LLMOBS_TENANT_TIER] = text(state.tenant_tier)
        if client_closed:
            # Also when the disconnect surfaced as an exception (an OSError
            # from send, say): the client left, the server did not fail.
            attributes[semconv.LLMOBS_CLIENT_CLOSED] = True
            status_code = status_code or CLIENT_CLOSED_STATUS
        if error is not None and not client_closed:
            record_exception_type(span, error)
            status_code = status_code or 500
            attributes[semconv.ERROR_TYPE] = type(error).__qualname__
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        elif status_code is not None and status_code >= 500 and not client_closed:
            attributes[semconv.ERROR_TYPE] = str(status_code)
            span.set_status(Status(StatusCode.ERROR))
        if status_code is not None:
            attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = status_code
        span.set_attributes(attributes)

    def _request_attributes(self) -> dict[str, str]:
        state = self.state
        values = {
            semconv.LLMOBS_REQUEST_ID: state.request_id,
            semconv.LLM_FEATURE_NAME: state.feature_name,
            semconv.LLMOBS_TENANT_ID: state.tenant_id,
            semconv.LLMOBS_TENANT_TIER: state.tenant_tier,
        }
        return {
            name: semconv.attribute_text(value)
            for name, value in values.items()
            if value is not None
        }


def carrier_from_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Build a header mapping with lower-case names from name-value pairs.

    Repeated headers are joined with ``,`` as HTTP allows for list headers.
    So a repeated ``tracestate`` is merged, and a repeated ``traceparent``
    becomes invalid and is ignored: a new trace starts.
    """
    carrier: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        carrier[key] = f"{carrier[key]},{value}" if key in carrier else value
    return carrier


_W3C_HEADERS = ("traceparent", "tracestate", "baggage")
_checked_textmap: object = None
_reads_w3c_only = False


def _propagator_reads_w3c_only() -> bool:
    """Return whether the global propagator reads W3C trace headers only.

    Judged by its ``fields``. Another propagator may also read headers that
    its ``fields`` cannot list (Jaeger's ``uberctx-*`` baggage, say).
    """
    global _checked_textmap, _reads_w3c_only
    textmap = propagate.get_global_textmap()
    if textmap is not _checked_textmap:
        fields = set(textmap.fields)
        _reads_w3c_only = bool(fields) and fields <= set(_W3C_HEADERS)
        _checked_textmap = textmap
    return _reads_w3c_only


def _parent_context(
    headers: Mapping[str, str], config: Config, state: RequestState
) -> otel_context.Context:
    """Return the context the request's headers propagate, and nothing else.

    Only the headers count: the ambient context may be a previous request's,
    left on a task the server reuses.
    """
    if _propagator_reads_w3c_only() and all(
        name not in headers for name in _W3C_HEADERS
    ):
        # The W3C propagators would find nothing, so they are skipped. Requests
        # from outside a traced system carry no trace headers.
        return otel_context.Context()
    carrier = _without_invalid_trace_headers(headers, config, state)
    return propagate.extract(carrier, context=otel_context.Context())


def _without_invalid_trace_headers(
    headers: Mapping[str, str], config: Config, state: RequestState
) -> Mapping[str, str]:
    dropped = invalid_trace_headers(headers)
    if not dropped:
        return headers
    # The first header dropped is the invalid one. A tracestate dropped with
    # an invalid traceparent may be valid, so it is not counted.
    config.metrics.invalid_headers.labels(dropped[0]).inc()
    logger.debug(
        "ignored invalid %s on request_id=%s", "/".join(dropped), state.request_id
    )
    return {name: value for name, value in headers.items() if name not in dropped}


def _debug_allowed(
    config: Config, headers: Mapping[str, str], state: RequestState
) -> bool:
    """Return whether the request may capture full content.

    A debug token that fails verification is ignored, never trusted, and
    counted in ``llmobs_debug_tokens_rejected_total{reason}``. The client
    controls how often that happens, so it is logged at DEBUG only.
    """
    policy = config.privacy
    if policy.is_debug_subject(state.tenant_id, state.user_id_hash):
        return True
    if not policy.allow_signed_debug:
        return False
    token = headers.get(policy.debug_header.lower())
    if token is None:
        return False
    reason = config.debug_tokens.check(token)
    if reason is None:
        return True
    config.metrics.debug_tokens_rejected.labels(reason).inc()
    logger.debug("debug token rejected (%s) on request_id=%s", reason, state.request_id)
    return False


def _state_from_headers(
    settings: ServerSettings, headers: Mapping[str, str], hash_user_id: Any
) -> RequestState:
    names = settings.headers
    state = RequestState(
        request_id=_request_id(headers.get(names.request_id), names.request_id),
        region=settings.region,
    )
    # Most requests carry few of these headers, and an absent one costs one
    # dictionary lookup.
    for attribute, name in settings.optional_headers:
        value = headers.get(name)
        if value is not None:
            value = value.strip()[:MAX_ATTRIBUTE_LENGTH]
            if value:
                setattr(state, attribute, value)
    user_id = headers.get(names.user_id)
    if user_id is not None:
        user_id = user_id.strip()[:MAX_ATTRIBUTE_LENGTH]
        if user_id:
            state.user_id_hash = hash_user_id(user_id)
    return state


def _request_id(received: str | None, header: str) -> str:
    if received is None:
        return new_request_id()
    if is_valid_request_id(received):
        return received
    get_config().metrics.invalid_headers.labels(header).inc()
    replacement = new_request_id()
    logger.debug(
        "invalid request id header (%d characters) replaced by %s",
        len(received),
        replacement,
    )
    return replacement


def _active_server_span() -> Span | None:
    """Return the current span if it is a live SERVER span.

    Such a span comes from another instrumentation: FastAPI's or Starlette's
    built-in telemetry, or an OpenTelemetry contrib ASGI, WSGI or Flask
    instrumentation. The ASGI plugin starts requests inside the known ones
    that it finds in its app, so that their span is current here.
    """
    span = trace.get_current_span()
    if span.is_recording() and getattr(span, "kind", None) is SpanKind.SERVER:
        return span
    return None


def _compile_pattern(pattern: object, option: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise TypeError(f"{option} patterns must be str, got {pattern!r}")
    if not pattern.startswith("/"):
        raise ValueError(
            f"{option} pattern {pattern!r} must start with '/', "
            "for example '/api/chat/*'"
        )
    return re.compile(fnmatch.translate(pattern))


def _check_name(name: object, pattern: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"features[{pattern!r}] must be a non-empty feature name, got {name!r}"
        )
    return name


def _as_dict(names: HeaderNames) -> dict[str, str]:
    return {field: getattr(names, field) for field in names.__slots__}
