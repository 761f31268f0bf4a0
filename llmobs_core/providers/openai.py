"""Read usage from OpenAI Chat Completions and Responses API objects.

Accepts the ``openai`` SDK's objects and their dict forms, and the
OpenAI-compatible dicts that LiteLLM, vLLM and OpenRouter return.
"""

from __future__ import annotations

from typing import Any

from llmobs_core.providers._usage import (
    Usage,
    read_count,
    read_field,
    read_str,
    text_of,
)

_CHAT_OBJECTS = ("chat.completion", "chat.completion.chunk")


def read_chat(response: Any) -> Usage | None:
    """Return the usage of a chat completion or chunk, or None if not one.

    OpenAI's ``prompt_tokens`` already include cached and cache-write
    tokens, and ``completion_tokens`` include reasoning tokens. A chunk without
    ``usage`` (all but the last, and the last too unless the request set
    ``stream_options={"include_usage": True}``) gives only model and finish
    reason.
    """
    kind = read_field(response, "object")
    if kind is None:
        if not is_unlabelled_chat(response):
            return None
    elif kind not in _CHAT_OBJECTS:
        return None
    usage = read_field(response, "usage")
    prompt_details = read_field(usage, "prompt_tokens_details")
    completion_details = read_field(usage, "completion_tokens_details")

    return Usage(
        input_tokens=read_count(usage, "prompt_tokens"),
        output_tokens=read_count(usage, "completion_tokens"),
        cached_input_tokens=read_count(prompt_details, "cached_tokens"),
        cache_creation_input_tokens=read_count(prompt_details, "cache_write_tokens"),
        reasoning_tokens=read_count(completion_details, "reasoning_tokens"),
        model=read_str(response, "model"),
        finish_reason=_chat_finish_reason(response),
        cost_usd=_reported_cost(usage),
    )


def read_responses(response: Any) -> Usage | None:
    """Return the usage of a Responses API ``Response``, or None if not one."""
    kind = read_field(response, "object")
    if kind is None:
        if not _is_unlabelled_response(response):
            return None
    elif kind != "response":
        return None
    usage = read_field(response, "usage")
    input_details = read_field(usage, "input_tokens_details")
    output_details = read_field(usage, "output_tokens_details")

    return Usage(
        input_tokens=read_count(usage, "input_tokens"),
        output_tokens=read_count(usage, "output_tokens"),
        cached_input_tokens=read_count(input_details, "cached_tokens"),
        cache_creation_input_tokens=read_count(input_details, "cache_write_tokens"),
        reasoning_tokens=read_count(output_details, "reasoning_tokens"),
        model=read_str(response, "model"),
        finish_reason=_responses_finish_reason(response),
    )


def is_unlabelled_chat(response: Any) -> bool:
    """Return whether a response without ``object`` has the chat completion keys.

    Proxies and hand-built dicts often leave ``object`` out. A ``choices``
    list, or a ``usage`` with ``prompt_tokens`` or ``completion_tokens``,
    marks a chat completion or chunk: no other supported API uses them.
    """
    if read_field(response, "choices") is not None:
        return True
    usage = read_field(response, "usage")
    return read_field(usage, "prompt_tokens", "completion_tokens") is not None


def _is_unlabelled_response(response: Any) -> bool:
    """Return whether a response without ``object`` has the Responses API keys.

    That is a ``usage`` with ``input_tokens`` or ``output_tokens`` and no
    ``type``, which Anthropic's messages, with the same usage keys, have.
    """
    if read_field(response, "type") is not None:
        return False
    usage = read_field(response, "usage")
    return read_field(usage, "input_tokens", "output_tokens") is not None


_RESPONSES_DELTAS = (
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
)
_RESPONSES_ENDS = ("response.completed", "response.incomplete", "response.failed")


def read_responses_event(event: Any) -> tuple[Usage | None, str]:
    """Read one Responses API stream event.

    Returns:
        The usage it carries (``response.completed``, ``response.incomplete``
        and ``response.failed`` carry the final one), and its output text.
    """
    kind = read_field(event, "type")
    if kind in _RESPONSES_DELTAS:
        return None, text_of(read_field(event, "delta"))
    if kind in _RESPONSES_ENDS:
        return read_responses(read_field(event, "response")), ""
    if kind == "response.created":
        response = read_field(event, "response")
        return Usage(model=read_str(response, "model")), ""
    return None, ""


def chat_chunk_text(chunk: Any) -> str:
    """Return the text and tool-call arguments in a chat chunk."""
    parts: list[str] = []
    for choice in read_field(chunk, "choices") or ():
        delta = read_field(choice, "delta")
        parts.append(text_of(read_field(delta, "content")))
        parts.append(text_of(read_field(delta, "refusal")))
        for call in read_field(delta, "tool_calls") or ():
            parts.append(text_of(read_field(read_field(call, "function"), "arguments")))
    return "".join(parts)


def chat_text(response: Any) -> str | None:
    """Return the first choice's message text of a chat completion."""
    for choice in read_field(response, "choices") or ():
        message = read_field(choice, "message")
        return text_of(read_field(message, "content", "refusal"))
    return None


def responses_text(response: Any) -> str | None:
    """Return the output text of a Responses API ``Response``."""
    parts: list[str] = []
    for item in read_field(response, "output") or ():
        for content in read_field(item, "content") or ():
            parts.append(text_of(read_field(content, "text", "refusal")))
    return "".join(parts)


def _chat_finish_reason(response: Any) -> str | None:
    for choice in read_field(response, "choices") or ():
        reason = read_str(choice, "finish_reason")
        if reason is not None:
            return reason
    return None


def _responses_finish_reason(response: Any) -> str | None:
    status = read_str(response, "status")
    if status == "incomplete":
        return read_str(read_field(response, "incomplete_details"), "reason")
    return status


def _reported_cost(usage: Any) -> float | None:
    # OpenRouter and LiteLLM proxies add the billed cost to the usage object.
    cost = read_field(usage, "cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        return float(cost)
    return None
