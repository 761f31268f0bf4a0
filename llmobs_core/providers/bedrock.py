"""Read usage from AWS Bedrock Converse responses (boto3 returns dicts).

Converse's ``inputTokens`` excludes prompt-cache reads and writes, which are
added here so that ``input_tokens`` counts every input token. Converse
responses do not name the model; the requested one is used.
"""

from __future__ import annotations

from typing import Any

from llmobs_core.providers._usage import (
    Usage,
    add_counts,
    read_count,
    read_field,
    read_str,
    text_of,
)


def read_converse(response: Any) -> Usage | None:
    """Return the usage of a Converse response, or None if it is not one."""
    if read_field(response, "stopReason") is None:
        return None
    usage = read_field(response, "usage")
    if read_count(usage, "inputTokens") is None:
        return None

    return _read_usage(usage, finish_reason=read_str(response, "stopReason"))


def read_converse_stream_event(event: Any) -> tuple[Usage | None, str] | None:
    """Read one ConverseStream event, or return None if it is not one.

    Returns:
        The usage it carries (the ``metadata`` event has the counts,
        ``messageStop`` the stop reason), and its output text.
    """
    metadata = read_field(event, "metadata")
    if metadata is not None:
        return _read_usage(read_field(metadata, "usage")), ""
    stop = read_field(event, "messageStop")
    if stop is not None:
        return Usage(finish_reason=read_str(stop, "stopReason")), ""
    block = read_field(event, "contentBlockDelta")
    if block is not None:
        delta = read_field(block, "delta")
        tool = read_field(delta, "toolUse")
        text = read_field(delta, "text")
        return None, text_of(text) + text_of(read_field(tool, "input"))
    if read_field(event, "messageStart", "contentBlockStart", "contentBlockStop"):
        return None, ""
    return None


def _read_usage(usage: Any, finish_reason: str | None = None) -> Usage:
    cache_read = read_count(usage, "cacheReadInputTokens")
    cache_write = read_count(usage, "cacheWriteInputTokens")
    uncached = read_count(usage, "inputTokens")
    return Usage(
        input_tokens=add_counts(uncached, cache_read, cache_write),
        output_tokens=read_count(usage, "outputTokens"),
        cached_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
        finish_reason=finish_reason,
    )


def converse_text(response: Any) -> str:
    """Return the text blocks of a Converse response's message, joined."""
    message = read_field(read_field(response, "output"), "message")
    blocks = read_field(message, "content") or ()
    return "".join(text_of(read_field(block, "text")) for block in blocks)
