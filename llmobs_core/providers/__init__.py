"""Read token usage from provider SDK responses, without importing any SDK.

One module per provider. ``extract_usage`` reads a whole response and
``read_stream_item`` one streamed chunk or event; both pick the adapter by
the object's shape, so SDK objects and their dict forms both work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core.providers import anthropic, bedrock, gemini, openai
from llmobs_core.providers._usage import Usage, read_field

__all__ = ["Usage", "extract_output_text", "extract_usage", "read_stream_item"]

logger = logging.getLogger(__name__)

_RESPONSE_READERS: tuple[Callable[[Any], Usage | None], ...] = (
    openai.read_chat,
    openai.read_responses,
    anthropic.read_message,
    gemini.read_generate_content,
    bedrock.read_converse,
)
# One WARNING per object type and interval, however many calls pass them.
_warning = RateLimitedWarning(logger, 300.0)


def extract_usage(response: Any) -> Usage | None:
    """Return the token usage and model reported in a provider response.

    Args:
        response: An SDK response object or its plain-dict JSON form: OpenAI
            chat completion or Responses ``Response``, Anthropic ``Message``,
            Gemini ``GenerateContentResponse``, Bedrock Converse response, or
            an OpenAI-compatible dict (LiteLLM, vLLM, OpenRouter).

    Returns:
        The usage, or None for a shape no adapter recognizes. Unknown shapes
        are logged at WARNING, at most once per type every 5 minutes, and
        never raise.
    """
    for reader in _RESPONSE_READERS:
        usage = reader(response)
        if usage is not None:
            return usage
    _report_unknown(response)

    return None


def read_stream_item(item: Any) -> tuple[Usage | None, str | None]:
    """Read one streamed chunk or event.

    Returns:
        The usage it carries, if any, and the generated text in it (text,
        refusals and tool-call arguments), or None for an item of unknown
        shape. The first item with text (or of unknown shape) marks the time
        to first token.
    """
    usage = openai.read_chat(item)
    if usage is not None:
        return usage, openai.chat_chunk_text(item)
    kind = read_field(item, "type")
    if isinstance(kind, str) and kind.startswith("response."):
        return openai.read_responses_event(item)
    for reader in (anthropic.read_stream_event, bedrock.read_converse_stream_event):
        found = reader(item)
        if found is not None:
            return found
    usage = gemini.read_generate_content(item)
    if usage is not None:
        return usage, gemini.output_text(item)
    _report_unknown(item)

    return None, None


def extract_output_text(response: Any) -> str | None:
    """Return the generated text of a provider response, or None if unknown."""
    kind = read_field(response, "object")
    if kind == "chat.completion":
        return openai.chat_text(response)
    if kind == "response":
        return openai.responses_text(response)
    if kind is None and openai.is_unlabelled_chat(response):
        return openai.chat_text(response)
    if read_field(response, "type") == "message":
        return anthropic.message_text(response)
    if read_field(response, "candidates") is not None:
        return gemini.output_text(response)
    if read_field(response, "stopReason") is not None:
        return bedrock.converse_text(response)
    return None


def _report_unknown(item: Any) -> None:
    # Names the type and the expected keys only: the item may quote user text.
    shape = type(item).__qualname__
    _warning.warn(
        shape,
        "no usage adapter recognizes %s objects, so the call gets no token "
        "counts or cost; expected an OpenAI chat completion (usage with "
        "prompt_tokens and completion_tokens, or choices), an OpenAI Responses "
        "response (usage with input_tokens and output_tokens), an Anthropic "
        "message (type 'message'), a Gemini response (usage_metadata) or a "
        "Bedrock Converse response (stopReason and usage with inputTokens), as "
        "an SDK object or a dict",
        shape,
    )
