"""Response objects and stream events of the OpenAI Responses API.

The bodies follow the ``Response`` object and the stream events of the OpenAI
Responses API, with the fields that the openai Python SDK (3.60) parses. A
stream sends ``event:`` and ``data:`` lines and no ``[DONE]``, and its events
carry ``sequence_number`` values from 0 up.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from examples.fake_provider._sse import encode_event, paced_pieces
from examples.fake_provider._text import Reply


@dataclasses.dataclass(frozen=True)
class GeneratedResponse:
    """Generated response to one request, before it is laid out as JSON.

    Attributes:
        response_id: ``id`` of the response, ``resp_`` and a hex string.
        message_id: ``id`` of the output message, ``msg_`` and a hex string.
        created_at: Creation time in seconds since the epoch.
        model: Model name as requested.
        instructions: System instructions of the request, or None.
        max_output_tokens: Token limit of the request, or None.
        reasoning_effort: ``reasoning.effort`` to report, or None.
        reasoning_tokens: Reasoning tokens included in ``output_tokens``.
        reply: Reply text, usage and latency.
    """

    response_id: str
    message_id: str
    created_at: int
    model: str
    instructions: str | None
    max_output_tokens: int | None
    reasoning_effort: str | None
    reasoning_tokens: int
    reply: Reply

    @property
    def final_status(self) -> str:
        """Final status, ``incomplete`` if the token limit cut the reply."""
        return "incomplete" if self.reply.truncated else "completed"


def response_body(generated: GeneratedResponse, status: str) -> dict[str, Any]:
    """Build the ``response`` object with the given status.

    ``status`` is in_progress, completed or incomplete. An in-progress response
    has no output, usage or completion time yet.
    """
    finished = status != "in_progress"
    # NOTE: OpenAI puts a "reasoning" item before the message of o-series models.
    # The fake reports only the reasoning token count, never that item.
    output = []
    if finished and generated.reply.pieces:
        output.append(_message_item(generated, generated.final_status))
    incomplete_details = None
    if status == "incomplete":
        incomplete_details = {"reason": "max_output_tokens"}
    return {
        "id": generated.response_id,
        "object": "response",
        "created_at": generated.created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": incomplete_details,
        "model": generated.model,
        "output": output,
        "usage": _usage_body(generated) if finished else None,
        **_settings_fields(generated),
    }


def _settings_fields(generated: GeneratedResponse) -> dict[str, Any]:
    return {
        "background": False,
        "instructions": generated.instructions,
        "max_output_tokens": generated.max_output_tokens,
        "max_tool_calls": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": generated.reasoning_effort, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "user": None,
    }


def _usage_body(generated: GeneratedResponse) -> dict[str, Any]:
    usage = generated.reply.usage
    output_tokens = usage.completion_tokens + generated.reasoning_tokens
    return {
        "input_tokens": usage.prompt_tokens,
        # The openai SDK 3.60 declares cache_write_tokens as a required field.
        # The fake never reports cache writes.
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": 0,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": generated.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + output_tokens,
    }


def _message_item(generated: GeneratedResponse, status: str) -> dict[str, Any]:
    content = [] if status == "in_progress" else [_text_part(generated.reply.text)]
    return {
        "id": generated.message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _EventEncoder:
    """Encoder of stream events that numbers them in the order they are sent."""

    def __init__(self) -> None:
        self._sequence_numbers = itertools.count()

    def encode(self, event_type: str, **fields: Any) -> bytes:
        """Encode an event of ``event_type`` with the next sequence number."""
        data = {"type": event_type, "sequence_number": next(self._sequence_numbers)}
        return encode_event({**data, **fields}, event_type)


async def stream_events(
    generated: GeneratedResponse, break_after: int | None
) -> AsyncIterator[bytes]:
    """Yield the stream events of a response.

    A response without output text skips the output item events. With
    ``break_after`` the stream ends after that many text deltas.
    """
    events = _EventEncoder()
    in_progress = response_body(generated, "in_progress")
    yield events.encode("response.created", response=in_progress)
    yield events.encode("response.in_progress", response=in_progress)
    pieces = generated.reply.pieces
    if pieces:
        for event in _message_added_events(generated, events):
            yield event
    latency = generated.reply.latency
    async for piece in paced_pieces(pieces, latency, break_after=break_after):
        yield events.encode(
            "response.output_text.delta",
            **_part_fields(generated),
            delta=piece,
            logprobs=[],
        )
    if break_after is not None:
        return
    if pieces:
        for event in _message_done_events(generated, events):
            yield event
    status = generated.final_status
    final = response_body(generated, status)
    yield events.encode(f"response.{status}", response=final)


def _message_added_events(
    generated: GeneratedResponse, events: _EventEncoder
) -> list[bytes]:
    item = _message_item(generated, "in_progress")
    return [
        events.encode("response.output_item.added", output_index=0, item=item),
        events.encode(
            "response.content_part.added",
            **_part_fields(generated),
            part=_text_part(""),
        ),
    ]


def _message_done_events(
    generated: GeneratedResponse, events: _EventEncoder
) -> list[bytes]:
    text = generated.reply.text
    part_fields = _part_fields(generated)
    item = _message_item(generated, generated.final_status)
    return [
        events.encode(
            "response.output_text.done", **part_fields, text=text, logprobs=[]
        ),
        events.encode(
            "response.content_part.done", **part_fields, part=_text_part(text)
        ),
        events.encode("response.output_item.done", output_index=0, item=item),
    ]


def _part_fields(generated: GeneratedResponse) -> dict[str, Any]:
    return {"item_id": generated.message_id, "output_index": 0, "content_index": 0}
