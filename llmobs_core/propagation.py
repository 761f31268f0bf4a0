"""Carry the trace context and request id to the provider's HTTP requests.

The provider call then appears in the provider's (or an LLM proxy's) logs
and traces under the gateway's ids: ``traceparent`` names the ``call_llm``
span as parent, and ``X-Request-ID`` is the gateway's request id.

Hooks exist for the HTTP clients that provider SDKs use: ``httpx2`` (current
``openai`` and ``anthropic`` SDKs), ``httpx`` (older ones, LiteLLM) and
``requests``. For one-off calls, pass ``outgoing_headers()`` as the SDK's
``extra_headers``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context

from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core.config import get_config
from llmobs_core.context import current_context

__all__ = [
    "BAGGAGE_FIELDS",
    "REQUEST_ID_HEADER",
    "httpx_event_hooks",
    "inject_headers",
    "instrument_requests",
    "outgoing_headers",
]

REQUEST_ID_HEADER = "X-Request-ID"

BAGGAGE_FIELDS = frozenset(
    {"feature_name", "tenant_tier", "region", "platform", "app_version"}
)
"""Request attributes that may be sent as W3C baggage, when asked for. Ids
of tenants, users and sessions are never sent."""

_BAGGAGE_PREFIX = "llmobs."

logger = logging.getLogger(__name__)
_warning = RateLimitedWarning(logger)

PROPAGATION_ERROR_LABEL = "propagation"
"""``emitter`` label of ``llmobs_emitter_errors_total`` for a failure to add
the trace headers to an outgoing request."""


def inject_headers(
    headers: MutableMapping[str, str],
    *,
    baggage_fields: Iterable[str] = (),
    request_id_header: str = REQUEST_ID_HEADER,
) -> None:
    """Add ``traceparent``, ``tracestate``, the request id and baggage.

    Uses the globally configured OpenTelemetry propagator (W3C trace context
    and baggage by default) with the current context, so call it inside the
    ``call_llm`` block. Headers already present are overwritten. A failure
    of the propagator is counted in ``llmobs_emitter_errors_total{emitter=
    "propagation"}`` and logged, never raised: the request then goes out
    without the trace headers.

    Args:
        headers: The outgoing request's headers.
        baggage_fields: Request attributes to send as baggage entries named
            ``llmobs.<field>``; a subset of ``BAGGAGE_FIELDS``.
        request_id_header: Header name for the request id.

    Raises:
        ValueError: For a baggage field outside ``BAGGAGE_FIELDS``.
    """
    _inject_guarded(headers, _check_baggage_fields(baggage_fields), request_id_header)


def _inject(
    headers: MutableMapping[str, str],
    fields: tuple[str, ...],
    request_id_header: str,
) -> None:
    request = current_context()
    # The request id goes first, so that it is sent even when a propagator
    # fails below.
    if request is not None and request.request_id is not None:
        headers[request_id_header] = request.request_id
    carrier_context = otel_context.get_current()
    if request is not None and fields:
        for field in fields:
            value = getattr(request, field)
            if value is not None:
                carrier_context = baggage.set_baggage(
                    _BAGGAGE_PREFIX + field, value, carrier_context
                )
    propagate.inject(headers, context=carrier_context)


def outgoing_headers(*, baggage_fields: Iterable[str] = ()) -> dict[str, str]:
    """Return the headers ``inject_headers`` adds, as a new dict.

    For SDK calls: ``create(..., extra_headers=llmobs.outgoing_headers())``.
    """
    headers: dict[str, str] = {}
    inject_headers(headers, baggage_fields=baggage_fields)
    return headers


def httpx_event_hooks(
    *, asynchronous: bool = False, baggage_fields: Iterable[str] = ()
) -> dict[str, list[Callable[[Any], Any]]]:
    """Return ``event_hooks`` for an ``httpx``/``httpx2`` client.

    Every request the client sends then carries the current trace context
    and request id. For the ``openai`` SDK::

        client = openai.AsyncOpenAI(
            http_client=openai.DefaultAsyncHttpxClient(
                event_hooks=llmobs.httpx_event_hooks(asynchronous=True)
            )
        )

    Args:
        asynchronous: True for ``AsyncClient``, whose hooks are coroutines.
        baggage_fields: As ``inject_headers``.

    Raises:
        ValueError: For a baggage field outside ``BAGGAGE_FIELDS``.
    """
    fields = _check_baggage_fields(baggage_fields)

    def inject(request: Any) -> None:
        _inject_guarded(request.headers, fields)

    async def inject_async(request: Any) -> None:
        inject(request)

    hook: Callable[[Any], Any] | Callable[[Any], Awaitable[None]]
    hook = inject_async if asynchronous else inject
    return {"request": [hook]}


def instrument_requests(session: Any, *, baggage_fields: Iterable[str] = ()) -> Any:
    """Make a ``requests.Session`` add the trace context to every request.

    Mounts a transport adapter for ``http://`` and ``https://`` that adds the
    headers just before sending, so ``requests`` is never imported here.

    Args:
        session: A ``requests.Session``.
        baggage_fields: As ``inject_headers``.

    Returns:
        The same session.
    """
    from requests.adapters import HTTPAdapter

    fields = _check_baggage_fields(baggage_fields)

    class _InjectingAdapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            _inject_guarded(request.headers, fields)
            return super().send(request, *args, **kwargs)

    for prefix in ("http://", "https://"):
        session.mount(prefix, _InjectingAdapter())

    return session


def _inject_guarded(
    headers: MutableMapping[str, str],
    fields: tuple[str, ...],
    request_id_header: str = REQUEST_ID_HEADER,
) -> None:
    """Add the headers as ``inject_headers`` does, without ever raising.

    The hooks run inside the application's provider request, which must be
    sent as it would be without llmobs. A failure (a custom propagator that
    raises, say) is counted in ``llmobs_emitter_errors_total{emitter=
    "propagation"}`` and logged as a rate-limited WARNING, and the request
    goes out without the headers that were not added.
    """
    try:
        _inject(headers, fields, request_id_header)
    except Exception:  # noqa: BLE001 - the provider request must go out
        get_config().metrics.emitter_errors.labels(PROPAGATION_ERROR_LABEL).inc()
        request = current_context()
        _warning.warn(
            PROPAGATION_ERROR_LABEL,
            "adding trace headers to an outgoing provider request failed, so it "
            "is sent without them (request_id=%s trace_id=%s)",
            request.request_id if request is not None else None,
            request.trace_id if request is not None else None,
            exc_info=True,
        )


def _check_baggage_fields(fields: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(fields)
    unknown = sorted(set(chosen) - BAGGAGE_FIELDS)
    if unknown:
        raise ValueError(
            f"baggage_fields {unknown} are not allowed; choose from "
            f"{sorted(BAGGAGE_FIELDS)} (ids of tenants and users are never sent)"
        )
    return chosen
