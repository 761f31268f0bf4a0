"""Read usage from Google Gemini ``generate_content`` responses.

Accepts the ``google-genai`` SDK's objects (snake_case) and the REST JSON
(camelCase). ``promptTokenCount`` includes cached tokens; output is
``candidatesTokenCount`` plus ``thoughtsTokenCount``, since Gemini reports
thinking tokens apart from the answer.
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


# NOTE: tested with the REST JSON and snake_case dicts; the google-genai SDK's
# objects are read through the same attribute names but were not installed.
def read_generate_content(response: Any) -> Usage | None:
    """Return the usage of a response or stream chunk, or None if not one."""
    usage = read_field(response, "usage_metadata", "usageMetadata")
    if usage is None:
        return None
    thoughts = read_count(usage, "thoughts_token_count", "thoughtsTokenCount")
    candidates = read_count(usage, "candidates_token_count", "candidatesTokenCount")

    return Usage(
        input_tokens=read_count(usage, "prompt_token_count", "promptTokenCount"),
        output_tokens=add_counts(candidates, thoughts),
        cached_input_tokens=read_count(
            usage, "cached_content_token_count", "cachedContentTokenCount"
        ),
        reasoning_tokens=thoughts,
        model=read_str(response, "model_version", "modelVersion"),
        finish_reason=_finish_reason(response),
    )


def output_text(response: Any) -> str:
    """Return the first candidate's text in a response or chunk."""
    for candidate in read_field(response, "candidates") or ():
        parts = read_field(read_field(candidate, "content"), "parts") or ()
        return "".join(text_of(read_field(part, "text")) for part in parts)
    return ""


def _finish_reason(response: Any) -> str | None:
    for candidate in read_field(response, "candidates") or ():
        reason = read_str(candidate, "finish_reason", "finishReason")
        if reason is not None:
            return reason
    return None
