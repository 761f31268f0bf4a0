"""Record the OpenTelemetry GenAI client metrics for every LLM call.

Instrument names, units, attributes and advisory bucket boundaries follow
the OpenTelemetry semantic conventions for generative AI client metrics.
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from llmobs_core import _semconv as semconv
from llmobs_core.emitters._base import StageEvent
from llmobs_core.schema import LLMCallLog

# Seconds, as the GenAI conventions advise for operation durations.
DURATION_BUCKETS_S = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
# Tokens, as the GenAI conventions advise for token usage.
TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)


class OTelMetricsEmitter:
    """Record ``gen_ai.client.*`` metrics through an OpenTelemetry meter.

    ``configure`` adds it when a meter provider is passed or a global one is
    set. The metrics do not depend on whether the call's span was sampled.

    Args:
        meter_provider: The provider; by default the global one.
    """

    name = "otel_metrics"

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("llmobs", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        """Record the call's duration, token usage and time to first chunk."""
        attributes = _attributes(event)
        self._duration.record(event.latency_ms / 1000, attributes)
        if event.time_to_first_token_ms is not None:
            self._first_chunk.record(event.time_to_first_token_ms / 1000, attributes)
        counts = (("input", event.input_tokens), ("output", event.output_tokens))
        for token_type, count in counts:
            if count is not None:
                typed = {**attributes, semconv.GEN_AI_TOKEN_TYPE: token_type}
                self._tokens.record(count, typed)

    def emit_stage(self, event: StageEvent) -> None:
        """Ignore stage events: the GenAI conventions define no stage metric."""


def _attributes(event: LLMCallLog) -> dict[str, AttributeValue]:
    values: dict[str, AttributeValue | None] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.GEN_AI_OPERATION_CHAT,
        semconv.GEN_AI_PROVIDER_NAME: semconv.optional_text(event.provider),
        semconv.GEN_AI_REQUEST_MODEL: semconv.attribute_text(event.model),
        semconv.GEN_AI_RESPONSE_MODEL: semconv.optional_text(event.response_model),
        semconv.ERROR_TYPE: event.error_type,
    }
    return {name: value for name, value in values.items() if value is not None}
