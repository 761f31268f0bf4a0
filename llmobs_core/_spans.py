"""Start spans that carry valid ids even when no OpenTelemetry SDK is set up."""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
)
from opentelemetry.util.types import Attributes

from llmobs_core._ids import new_span_id, new_trace_id
from llmobs_core._status import error_type_name

logger = logging.getLogger("llmobs_core.stages")

T = TypeVar("T")


def start_span(
    tracer: trace.Tracer,
    name: str,
    *,
    context: Context | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
) -> Span:
    """Start a span as a child of the span in ``context`` (or the current one).

    With only ``opentelemetry-api`` installed the tracer returns the parent
    itself, or an invalid span. This function then returns a non-recording
    span with the parent's trace id (or a new one) and a new span id, so that
    events and outgoing ``traceparent`` headers still correlate.
    """
    span = tracer.start_span(name, context=context, kind=kind, attributes=attributes)
    if span.is_recording():
        return span
    parent = trace.get_current_span(context)
    if span is not parent and span.get_span_context().is_valid:
        return span

    parent_context = parent.get_span_context()
    if parent_context.is_valid:
        trace_id, flags = parent_context.trace_id, parent_context.trace_flags
    else:
        trace_id, flags = new_trace_id(), TraceFlags(TraceFlags.DEFAULT)

    return NonRecordingSpan(
        SpanContext(
            trace_id=trace_id,
            span_id=new_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=parent_context.trace_state,
        )
    )


def detach_context(token: Token[Any] | None) -> None:
    """Detach an OpenTelemetry context attached by ``otel_context.attach``.

    A scope can end in another context than the one it started in: an
    async generator closed by the event loop's clean-up task, for example.
    The detach then fails; that is logged at DEBUG instead of the ERROR that
    ``otel_context.detach`` logs, because the span and event are complete.
    """
    if token is None:
        return
    variable = getattr(token, "var", None)
    if not isinstance(variable, ContextVar):
        # A custom OpenTelemetry runtime context; let it handle the token.
        otel_context.detach(token)
        return
    try:
        variable.reset(token)
    except ValueError:
        logger.debug("span context ended in a different context; not detached")


def reset_variable(variable: ContextVar[T], token: Token[T] | None) -> None:
    """Reset a context variable, tolerating a token from another context."""
    if token is None:
        return
    try:
        variable.reset(token)
    except ValueError:
        logger.debug("%s ended in a different context; not reset", variable.name)


def record_exception_type(span: Span, error: BaseException) -> None:
    """Add an ``exception`` event with the exception's type only.

    ``Span.record_exception`` would also store the message and stack trace,
    which can quote user text (a provider error echoing the prompt, a
    ``ValueError`` showing the input), and span attributes must carry none.
    """
    span.add_event(
        "exception",
        {
            "exception.type": error_type_name(error),
            "exception.escaped": True,
        },
    )
