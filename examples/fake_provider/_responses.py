"""Chat Completions response bodies, server-sent event streams and OpenAI errors.

The field layout follows the OpenAI Chat Completions API: a ``chat.completion``
object for plain responses and ``chat.completion.chunk`` objects, each sent as
one ``data:`` event and followed by ``data: [DONE]``, for streams. The error
bodies are shared with the Responses API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Send

from examples.fake_provider._config import Behavior, FakeProviderConfig
from examples.fake_provider._sse import encode_event, sleep_seconds
from examples.fake_provider._text import LatencyPlan, Usage

SYSTEM_FINGERPRINT = "fp_fake_provider"


@dataclasses.dataclass(frozen=True)
class Completion:
    """Generated completion of one request, shared by both response forms."""

    id: str
    created: int
    model: str
    pieces: tuple[str, ...]
    finish_reason: str
    usage: Usage
    latency: LatencyPlan

    @property
    def content(self) -> str:
        """Full reply text."""
        return "".join(self.pieces)


def completion_body(completion: Completion) -> dict[str, Any]:
    """Build the ``chat.completion`` object of a non-streaming response."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.content,
        "refusal": None,
        "annotations": [],
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": completion.finish_reason,
    }
    return {
        **_common_fields(completion, "chat.completion"),
        "choices": [choice],
        "usage": completion.usage.to_json(),
    }


def error_response(
    status_code: int,
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build an error response with the OpenAI error body."""
    error = {"message": message, "type": error_type, "param": param, "code": code}
    return JSONResponse({"error": error}, status_code=status_code, headers=headers)


def simulated_error_response(
    behavior: Behavior, config: FakeProviderConfig
) -> JSONResponse | None:
    """Build the OpenAI error response that ``behavior`` simulates, if any.

    Returns None for the behaviours that do not end in an error status.
    """
    if behavior is Behavior.RATE_LIMIT:
        retry_after = config.retry_after_seconds
        return error_response(
            429,
            f"Simulated rate limit. Please try again in {retry_after}s.",
            "rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": str(retry_after)},
        )
    if behavior is Behavior.SERVER_ERROR:
        message = "Simulated server error while processing the request."
        return error_response(500, message, "server_error")
    if behavior is Behavior.OVERLOADED:
        message = "Simulated overload. Please try again later."
        return error_response(503, message, "server_error")
    if behavior is Behavior.BAD_REQUEST:
        message = "Simulated invalid request, selected by the bad_request behaviour."
        return error_response(400, message, "invalid_request_error")
    return None


async def stream_chunks(
    completion: Completion, *, include_usage: bool, break_after: int | None = None
) -> AsyncIterator[bytes]:
    """Yield the events of a streaming response, sleeping for the planned delays.

    The first chunk carries the role, each later one a piece of content, then one
    chunk carries the finish reason. With ``include_usage`` a last chunk with no
    choices carries the usage, and all earlier chunks have ``"usage": null``.
    With ``break_after`` the stream ends after that many content chunks, without
    finish reason or ``[DONE]``.
    """
    usage_field = {"usage": None} if include_usage else {}
    await sleep_seconds(completion.latency.first_token_seconds)
    yield encode_event(
        _chunk(completion, {"role": "assistant", "content": ""}, usage_field)
    )
    delays = (0.0, *completion.latency.token_seconds)
    for index, (piece, delay) in enumerate(zip(completion.pieces, delays, strict=True)):
        if index == break_after:
            return
        await sleep_seconds(delay)
        yield encode_event(_chunk(completion, {"content": piece}, usage_field))
    if break_after is not None:
        return
    finish = _chunk(completion, {}, usage_field, completion.finish_reason)
    yield encode_event(finish)
    if include_usage:
        usage_chunk = _common_fields(completion, "chat.completion.chunk")
        usage_chunk.update(choices=[], usage=completion.usage.to_json())
        yield encode_event(usage_chunk)
    yield b"data: [DONE]\n\n"


class BrokenStreamResponse(StreamingResponse):
    """Streaming response that ends without the final empty body message.

    Uvicorn then logs "ASGI callable returned without completing response" and
    closes the connection, so the client sees an incomplete chunked body.
    """

    async def stream_response(self, send: Send) -> None:
        """Send the status, headers and body chunks, but never end the body."""
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            body = chunk.encode(self.charset) if isinstance(chunk, str) else chunk
            await send({"type": "http.response.body", "body": body, "more_body": True})


def _common_fields(completion: Completion, object_type: str) -> dict[str, Any]:
    return {
        "id": completion.id,
        "object": object_type,
        "created": completion.created,
        "model": completion.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _chunk(
    completion: Completion,
    delta: dict[str, Any],
    usage_field: dict[str, Any],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    choice = {
        "index": 0,
        "delta": delta,
        "logprobs": None,
        "finish_reason": finish_reason,
    }
    chunk = _common_fields(completion, "chat.completion.chunk")
    chunk.update(choices=[choice], **usage_field)
    return chunk
