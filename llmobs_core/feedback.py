"""Record feedback on a response (a rating, a hallucination report) as an event.

A feedback event is one JSON line on the ``llmobs.events`` logger. Its
``"event": "feedback"`` field distinguishes it from call events, and
``llmobs report`` joins it to them by ``request_id``. When a recording span is
current, the feedback is also added to it as an OpenTelemetry
``gen_ai.evaluation.result`` span event.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field

from llmobs_core._semconv import attribute_text
from llmobs_core.emitters.jsonlog import EVENTS_LOGGER, json_line

__all__ = ["FeedbackLog", "record_feedback"]

EVALUATION_EVENT = "gen_ai.evaluation.result"
"""Span event name of the OpenTelemetry GenAI semantic conventions for an
evaluation result."""


class FeedbackLog(BaseModel):
    """Feedback on the response to one gateway request, written as one JSON line."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Literal["feedback"] = Field(
        default="feedback", description="Marks the line as feedback, not a call."
    )
    timestamp: datetime = Field(description="UTC instant the feedback was recorded.")
    request_id: str = Field(
        min_length=1, description="Id of the request whose response is rated."
    )
    trace_id: str | None = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="W3C trace id of the span current when the feedback was "
        "recorded; null without one.",
    )
    name: str = Field(
        min_length=1, description="What is measured, for example 'hallucination'."
    )
    value: float = Field(description="Score, for example 1.0 for a report.")
    label: str | None = Field(description="Optional category, for example 'wrong'.")


def record_feedback(
    *, request_id: str, name: str, value: float, label: str | None = None
) -> FeedbackLog:
    """Log one feedback event and add it to the current span, if recording.

    Args:
        request_id: Id of the request whose response the feedback is about, as
            in the call events' ``request_id``.
        name: What is measured, for example ``"hallucination"`` or ``"rating"``.
        value: Score; ``llmobs report`` shows the mean per name and group.
        label: Optional category of the score.

    Returns:
        The logged event.

    Raises:
        pydantic.ValidationError: If ``request_id`` or ``name`` is empty.
    """
    span = trace.get_current_span()
    span_context = span.get_span_context()
    trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else None
    feedback = FeedbackLog(
        timestamp=datetime.now(UTC),
        request_id=request_id,
        trace_id=trace_id,
        name=name,
        value=value,
        label=label,
    )
    logger = logging.getLogger(EVENTS_LOGGER)
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", json_line(feedback))
    if span.is_recording():
        attributes: dict[str, str | float] = {
            "gen_ai.evaluation.name": attribute_text(name),
            "gen_ai.evaluation.score.value": value,
        }
        if label is not None:
            attributes["gen_ai.evaluation.score.label"] = attribute_text(label)
        span.add_event(EVALUATION_EVENT, attributes)
    return feedback
