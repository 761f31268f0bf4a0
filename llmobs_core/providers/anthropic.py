"""Read usage from Anthropic Messages API objects and stream events.

Anthropic's ``input_tokens`` excludes prompt-cache reads and writes. They are
added here, so that ``input_tokens`` counts every input token as for other
providers, and the cache parts are kept apart for pricing.
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


def read_message(response: Any) -> Usage | None:
    """Return the usage of a ``Message``, or None if it is not one."""
    if read_field(response, "type") != "message":
        return None
    usage = _read_usage(read_field(response, "usage"))
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        model=read_str(response, "model"),
        finish_reason=read_str(response, "stop_reason"),
    )


_QUIET_EVENTS = ("content_block_start", "content_block_stop", "message_stop", "ping")


def read_stream_event(event: Any) -> tuple[Usage | None, str] | None:
    """Read one Messages stream event, or return None if it is not one.

    Returns:
        The usage it carries, and its output text.
        ``message_start`` carries the input counts; each ``message_delta``
        carries the output count so far and the stop reason.
    """
    kind = read_field(event, "type")
    if kind == "message_start":
        return read_message(read_field(event, "message")), ""
    if kind == "message_delta":
        usage = read_field(event, "usage")
        delta = read_field(event, "delta")
        reported = Usage(
            output_tokens=read_count(usage, "output_tokens"),
            finish_reason=read_str(delta, "stop_reason"),
        )
        return reported, ""
    if kind == "content_block_delta":
        delta = read_field(event, "delta")
        return None, text_of(read_field(delta, "text", "partial_json", "thinking"))
    if kind in _QUIET_EVENTS:
        return None, ""
    return None


def _read_usage(usage: Any) -> Usage:
    uncached = read_count(usage, "input_tokens")
    cache_read = read_count(usage, "cache_read_input_tokens")
    cache_write = read_count(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=add_counts(uncached, cache_read, cache_write),
        output_tokens=read_count(usage, "output_tokens"),
        cached_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
    )


def message_text(response: Any) -> str:
    """Return the text blocks of a ``Message``, joined."""
    blocks = read_field(response, "content") or ()
    return "".join(text_of(read_field(block, "text")) for block in blocks)
