"""Span attribute names used by llmobs.

HTTP, URL and error names come from ``opentelemetry-semantic-conventions``
(stable). The GenAI names follow the OpenTelemetry GenAI semantic conventions;
they are spelled out here because ``opentelemetry-semantic-conventions``
0.66b2 marks its ``gen_ai`` module deprecated (moved to a separate repository).
"""

from __future__ import annotations

import re
from typing import Final

from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_SCHEME

__all__ = [
    "ERROR_TYPE",
    "HTTP_REQUEST_METHOD",
    "HTTP_RESPONSE_STATUS_CODE",
    "HTTP_ROUTE",
    "URL_PATH",
    "URL_SCHEME",
]

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_OPERATION_CHAT: Final = "chat"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"

LLM_FEATURE_NAME: Final = "llm.feature_name"
LLM_MODEL: Final = "llm.model"
LLM_PROVIDER: Final = "llm.provider"
LLM_INPUT_TOKENS: Final = "llm.input_tokens"
LLM_OUTPUT_TOKENS: Final = "llm.output_tokens"
LLM_CACHED_INPUT_TOKENS: Final = "llm.cached_input_tokens"
LLM_CACHE_HIT: Final = "llm.cache_hit"
LLM_STATUS: Final = "llm.status"
LLM_COST_USD: Final = "llm.cost_usd"
LLM_STREAMING: Final = "llm.streaming"
LLM_RETRIES: Final = "llm.retries"
LLM_PROMPT_TEMPLATE_ID: Final = "llm.prompt_template_id"
LLM_PROMPT_HASH: Final = "llm.prompt_hash"
LLM_TIME_TO_FIRST_TOKEN_MS: Final = "llm.time_to_first_token_ms"
LLM_STAGE: Final = "llm.stage"

LLMOBS_REQUEST_ID: Final = "llmobs.request_id"
LLMOBS_TENANT_ID: Final = "llmobs.tenant_id"
LLMOBS_TENANT_TIER: Final = "llmobs.tenant_tier"
LLMOBS_CLIENT_CLOSED: Final = "llmobs.client_closed"


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def attribute_text(value: str) -> str:
    r"""Return ``value`` with each lone surrogate replaced by U+FFFD.

    OTLP exporters encode string attributes as UTF-8, and drop one that
    contains a lone surrogate (which JSON's ``\ud800`` escapes produce) with an
    ERROR log on every export. Most values are ASCII, which is checked first.
    """
    if value.isascii():
        return value
    return _LONE_SURROGATE.sub("\ufffd", value)


def optional_text(value: str | None) -> str | None:
    """Return ``attribute_text(value)``, or None for None."""
    return None if value is None else attribute_text(value)
