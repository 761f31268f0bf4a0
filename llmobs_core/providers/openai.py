"""Read usage from OpenAI Chat Completions responses and stream chunks."""

from __future__ import annotations

from typing import Any

from llmobs_core.providers._usage import Usage, read_count, read_field


def read_openai_chat(response: Any) -> Usage | None:
    """Return the usage of a chat completion, or None if it is not one.

    Accepts ``openai.types.chat.ChatCompletion`` and ``ChatCompletionChunk``
    objects and their dict forms. A chunk without a ``usage`` member (every
    chunk but the last, and the last one too unless the request set
    ``stream_options={"include_usage": True}``) gives a Usage with only the
    model set.
    """
    if read_field(response, "object") not in (
        "chat.completion",
        "chat.completion.chunk",
    ):
        return None
    model = read_field(response, "model")
    usage = read_field(response, "usage")
    if usage is None:
        return Usage(model=model if isinstance(model, str) else None)
    details = read_field(usage, "prompt_tokens_details")

    return Usage(
        input_tokens=read_count(usage, "prompt_tokens"),
        output_tokens=read_count(usage, "completion_tokens"),
        cached_input_tokens=read_count(details, "cached_tokens"),
        model=model if isinstance(model, str) else None,
    )
