"""Put the call event's fields on the ``call_llm`` span as attributes."""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from llmobs_core import _semconv as semconv
from llmobs_core.emitters._base import StageEvent
from llmobs_core.schema import CallStatus, LLMCallLog

# Outcomes that leave the span status unset: a client that went away, a
# guardrail that did its job and a budget that denied the call are not
# failures of the call.
NOT_ERRORS = frozenset(
    {
        CallStatus.OK,
        CallStatus.CANCELLED,
        CallStatus.FILTERED_BY_GUARDRAIL,
        CallStatus.BUDGET_EXCEEDED,
    }
)


class OTelSpanEmitter:
    """Set ``llm.*`` and GenAI semantic-convention attributes on the span.

    Works with ``opentelemetry-api`` alone: without an SDK the span does not
    record and this emitter does nothing.
    """

    name = "otel"

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        """Set the attributes and, for a failed call, the span status."""
        if not span.is_recording():
            return
        span.set_attributes(call_attributes(event))
        if event.status not in NOT_ERRORS:
            span.set_status(Status(StatusCode.ERROR, event.status.value))

    def emit_stage(self, event: StageEvent) -> None:
        """Ignore stage events: stage spans are made by the stages themselves."""


def call_attributes(event: LLMCallLog) -> dict[str, AttributeValue]:
    """Return the span attributes for a call event, without null values."""
    # Written out instead of filtering a dict of all 24: this runs once per
    # call, and the order of the attributes stays the same. Strings that can
    # come from outside the code pass through attribute_text().
    attributes: dict[str, AttributeValue] = {}
    text = semconv.attribute_text
    feature_name = event.feature_name
    if feature_name is not None:
        attributes[semconv.LLM_FEATURE_NAME] = text(feature_name)
    model = text(event.model)
    attributes[semconv.LLM_MODEL] = model
    provider = semconv.optional_text(event.provider)
    if provider is not None:
        attributes[semconv.LLM_PROVIDER] = provider
    input_tokens = event.input_tokens
    if input_tokens is not None:
        attributes[semconv.LLM_INPUT_TOKENS] = input_tokens
    output_tokens = event.output_tokens
    if output_tokens is not None:
        attributes[semconv.LLM_OUTPUT_TOKENS] = output_tokens
    cached_input_tokens = event.cached_input_tokens
    if cached_input_tokens is not None:
        attributes[semconv.LLM_CACHED_INPUT_TOKENS] = cached_input_tokens
    attributes[semconv.LLM_CACHE_HIT] = event.cache_hit
    attributes[semconv.LLM_STATUS] = event.status.value
    if event.cost_usd is not None:
        attributes[semconv.LLM_COST_USD] = event.cost_usd
    attributes[semconv.LLM_STREAMING] = event.streaming
    attributes[semconv.LLM_RETRIES] = event.retries
    if event.prompt_template_id is not None:
        attributes[semconv.LLM_PROMPT_TEMPLATE_ID] = text(event.prompt_template_id)
    if event.prompt_hash is not None:
        attributes[semconv.LLM_PROMPT_HASH] = event.prompt_hash
    if event.time_to_first_token_ms is not None:
        attributes[semconv.LLM_TIME_TO_FIRST_TOKEN_MS] = event.time_to_first_token_ms
    if event.request_id is not None:
        attributes[semconv.LLMOBS_REQUEST_ID] = event.request_id
    if event.tenant_id is not None:
        attributes[semconv.LLMOBS_TENANT_ID] = text(event.tenant_id)
    if event.tenant_tier is not None:
        attributes[semconv.LLMOBS_TENANT_TIER] = text(event.tenant_tier)
    attributes[semconv.GEN_AI_OPERATION_NAME] = semconv.GEN_AI_OPERATION_CHAT
    if provider is not None:
        attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
    attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    if event.response_model is not None:
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = text(event.response_model)
    attributes[semconv.GEN_AI_REQUEST_STREAM] = event.streaming
    if cached_input_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached_input_tokens
    if input_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if output_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    if event.error_type is not None:
        attributes[semconv.ERROR_TYPE] = event.error_type
    return attributes
