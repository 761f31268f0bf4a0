"""Endpoint of the Anthropic Messages API, ``POST /v1/messages``.

The bodies follow the ``Message`` object, the stream events and the error body
of the Anthropic Messages API, with the fields that the anthropic Python SDK
(2.17) parses. Responses carry a ``request-id`` header, as Anthropic's do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from examples.fake_provider._config import Behavior, FakeProviderConfig
from examples.fake_provider._requests import (
    InvalidRequestError,
    optional_field,
    positive_int_field,
    require_model,
    validate_messages,
)
from examples.fake_provider._responses import BrokenStreamResponse
from examples.fake_provider._sse import encode_event, paced_pieces
from examples.fake_provider._text import Reply, Usage, plan_reply, request_digest

# Cache reads come in whole blocks of this many tokens, see _usage_body.
_CACHE_READ_BLOCK_TOKENS = 1024

_DELTA_USAGE_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)

_SIMULATED_ERRORS = {
    Behavior.RATE_LIMIT: (429, "rate_limit_error", "Simulated rate limit."),
    Behavior.SERVER_ERROR: (500, "api_error", "Simulated internal server error."),
    Behavior.OVERLOADED: (529, "overloaded_error", "Simulated overload."),
    Behavior.BAD_REQUEST: (
        400,
        "invalid_request_error",
        "Simulated invalid request, selected by the bad_request behaviour.",
    ),
}


@dataclasses.dataclass(frozen=True)
class MessagesRequest:
    """Fields of a Messages API request that the provider uses.

    Attributes:
        model: Model name as requested.
        messages: Chat messages that the prompt estimate and the reply use.
            The ``system`` prompt comes first as a system message, then the
            conversation.
        max_tokens: Maximum number of output tokens.
        stream: Whether the response is a server-sent event stream.
    """

    model: str
    messages: list[Any]
    max_tokens: int
    stream: bool


def parse_messages_request(body: Any) -> MessagesRequest:
    """Validate a parsed request body and extract the fields the provider uses.

    Raises:
        InvalidRequestError: The body is not a JSON object, or a field is missing
            or has the wrong type. ``max_tokens`` is required, as in the
            Anthropic API.
    """
    model = require_model(body)
    messages = validate_messages(body.get("messages"))
    max_tokens = positive_int_field(body, "max_tokens")
    if max_tokens is None:
        raise InvalidRequestError("max_tokens: Field required", "max_tokens")
    return MessagesRequest(
        model=model,
        messages=_system_messages(body.get("system")) + messages,
        max_tokens=max_tokens,
        stream=optional_field(body, "stream", bool, default=False),
    )


def anthropic_error_response(
    status_code: int,
    error_type: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build an error response with the Anthropic error body and a request id."""
    request_id = _request_id()
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
    all_headers = {"request-id": request_id, **(headers or {})}
    return JSONResponse(body, status_code=status_code, headers=all_headers)


class MessagesEndpoint:
    """Request parsing, errors and responses of the Messages API."""

    def __init__(self, config: FakeProviderConfig) -> None:
        self.config = config

    def parse(self, body: Any) -> MessagesRequest:
        """Validate a parsed request body, see ``parse_messages_request``."""
        return parse_messages_request(body)

    def invalid_request_response(self, error: InvalidRequestError) -> Response:
        """Build the 400 response with the Anthropic error body."""
        return anthropic_error_response(400, "invalid_request_error", str(error))

    def simulated_error_response(self, behavior: Behavior) -> Response | None:
        """Build the Anthropic error response that ``behavior`` simulates, if any.

        ``overloaded`` gets Anthropic's 529 status, and ``rate_limit`` a
        ``retry-after`` header.
        """
        if behavior not in _SIMULATED_ERRORS:
            return None
        status_code, error_type, message = _SIMULATED_ERRORS[behavior]
        headers = None
        if behavior is Behavior.RATE_LIMIT:
            headers = {"retry-after": str(self.config.retry_after_seconds)}
        return anthropic_error_response(status_code, error_type, message, headers)

    async def respond(self, request: MessagesRequest, behavior: Behavior) -> Response:
        """Build the message, or a stream of events, after the simulated latency."""
        digest = request_digest(request.model, request.messages)
        reply = plan_reply(digest, request.messages, request.max_tokens, self.config)
        message = _MessageParts(f"msg_{uuid.uuid4().hex[:24]}", request.model, reply)
        headers = {"request-id": _request_id()}
        if not request.stream:
            await asyncio.sleep(reply.latency.total_seconds)
            return JSONResponse(_message_body(message), headers=headers)
        break_after = None
        response_class = StreamingResponse
        if behavior is Behavior.STREAM_ERROR:
            break_after = self.config.stream_error_chunks
            response_class = BrokenStreamResponse
        events = _stream_events(message, break_after)
        return response_class(events, headers=headers, media_type="text/event-stream")


@dataclasses.dataclass(frozen=True)
class _MessageParts:
    id: str
    model: str
    reply: Reply

    @property
    def stop_reason(self) -> str:
        return "max_tokens" if self.reply.truncated else "end_turn"


def _system_messages(system: Any) -> list[Any]:
    if system is None:
        return []
    is_block_list = isinstance(system, list) and all(
        isinstance(block, Mapping) for block in system
    )
    if not isinstance(system, str) and not is_block_list:
        message = "Invalid 'system': expected a string or an array of text blocks."
        raise InvalidRequestError(message, "system")
    return [{"role": "system", "content": system}]


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def _usage_body(usage: Usage, output_tokens: int) -> dict[str, Any]:
    """Build the ``usage`` object with the estimated prompt split by cache use.

    The cacheable prefix is ``usage.cached_tokens``, which follows the OpenAI
    rule of ``estimate_usage``. Its whole 1024-token blocks below the prefix
    length count as cache reads, and the rest of the prefix as a cache write.
    ``input_tokens`` counts only the tokens after the prefix, as in Anthropic's
    usage, which excludes cache reads and writes from ``input_tokens``.
    """
    cached = usage.cached_tokens
    cache_read = 0
    if cached > 0:
        cache_read = (cached - 1) // _CACHE_READ_BLOCK_TOKENS * _CACHE_READ_BLOCK_TOKENS
    cache_creation = cached - cache_read
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_creation,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message_body(
    message: _MessageParts, *, streaming_start: bool = False
) -> dict[str, Any]:
    """Build the ``message`` object, or with ``streaming_start`` its first form.

    The first form of a stream has no content and no stop reason yet, and
    reports 1 output token, as Anthropic's ``message_start`` event does.
    """
    content = [{"type": "text", "text": message.reply.text}]
    output_tokens = message.reply.usage.completion_tokens
    if streaming_start:
        content = []
        output_tokens = 1
    return {
        "id": message.id,
        "type": "message",
        "role": "assistant",
        "model": message.model,
        "content": content,
        "stop_reason": None if streaming_start else message.stop_reason,
        "stop_sequence": None,
        "usage": _usage_body(message.reply.usage, output_tokens),
    }


def _event(data: dict[str, Any]) -> bytes:
    return encode_event(data, data["type"])


async def _stream_events(
    message: _MessageParts, break_after: int | None
) -> AsyncIterator[bytes]:
    """Yield the stream events of a message in the Anthropic order.

    With ``break_after`` the stream ends after that many text deltas.
    """
    start = _message_body(message, streaming_start=True)
    yield _event({"type": "message_start", "message": start})
    block = {"type": "text", "text": ""}
    yield _event({"type": "content_block_start", "index": 0, "content_block": block})
    yield _event({"type": "ping"})
    latency = message.reply.latency
    async for piece in paced_pieces(
        message.reply.pieces, latency, break_after=break_after
    ):
        delta = {"type": "text_delta", "text": piece}
        yield _event({"type": "content_block_delta", "index": 0, "delta": delta})
    if break_after is not None:
        return
    yield _event({"type": "content_block_stop", "index": 0})
    usage = message.reply.usage
    full_usage = _usage_body(usage, usage.completion_tokens)
    # The counts are cumulative, as in Anthropic's message_delta, so the input
    # counts repeat those of message_start rather than add to them.
    delta_usage = {name: full_usage[name] for name in _DELTA_USAGE_FIELDS}
    yield _event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message.stop_reason, "stop_sequence": None},
            "usage": delta_usage,
        }
    )
    yield _event({"type": "message_stop"})
