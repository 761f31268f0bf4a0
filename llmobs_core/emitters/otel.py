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
    values: dict[str, AttributeValue | None] = {
        semconv.LLM_FEATURE_NAME: event.feature_name,
        semconv.LLM_MODEL: event.model,
        semconv.LLM_PROVIDER: event.provider,
        semconv.LLM_INPUT_TOKENS: event.input_tokens,
        semconv.LLM_OUTPUT_TOKENS: event.output_tokens,
        semconv.LLM_CACHED_INPUT_TOKENS: event.cached_input_tokens,
        semconv.LLM_CACHE_HIT: event.cache_hit,
        semconv.LLM_STATUS: event.status.value,
        semconv.LLM_COST_USD: event.cost_usd,
        semconv.LLM_STREAMING: event.streaming,
        semconv.LLM_RETRIES: event.retries,
        semconv.LLM_PROMPT_TEMPLATE_ID: event.prompt_template_id,
        semconv.LLM_PROMPT_HASH: event.prompt_hash,
        semconv.LLM_TIME_TO_FIRST_TOKEN_MS: event.time_to_first_token_ms,
        semconv.LLMOBS_REQUEST_ID: event.request_id,
        semconv.LLMOBS_TENANT_ID: event.tenant_id,
        semconv.LLMOBS_TENANT_TIER: event.tenant_tier,
        semconv.GEN_AI_OPERATION_NAME: semconv.GEN_AI_OPERATION_CHAT,
        semconv.GEN_AI_PROVIDER_NAME: event.provider,
        semconv.GEN_AI_REQUEST_MODEL: event.model,
        semconv.GEN_AI_RESPONSE_MODEL: event.response_model,
        semconv.GEN_AI_REQUEST_STREAM: event.streaming,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: event.cached_input_tokens,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: event.input_tokens,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: event.output_tokens,
        semconv.ERROR_TYPE: event.error_type,
    }

    return {name: value for name, value in values.items() if value is not None}
