"""Endpoint of the OpenAI Chat Completions API, ``POST /v1/chat/completions``."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from examples.fake_provider._config import Behavior, FakeProviderConfig
from examples.fake_provider._requests import (
    ChatRequest,
    InvalidRequestError,
    parse_chat_request,
)
from examples.fake_provider._responses import (
    BrokenStreamResponse,
    Completion,
    completion_body,
    simulated_error_response,
    stream_chunks,
)
from examples.fake_provider._text import plan_reply, request_digest


class ChatCompletionsEndpoint:
    """Request parsing, errors and responses of the Chat Completions API."""

    def __init__(self, config: FakeProviderConfig) -> None:
        self.config = config

    def parse(self, body: Any) -> ChatRequest:
        """Validate a parsed request body, see ``parse_chat_request``."""
        return parse_chat_request(body)

    def invalid_request_response(self, error: InvalidRequestError) -> Response:
        """Build the 400 response with the OpenAI error body."""
        return error.to_response()

    def simulated_error_response(self, behavior: Behavior) -> Response | None:
        """Build the OpenAI error response that ``behavior`` simulates, if any."""
        return simulated_error_response(behavior, self.config)

    async def respond(self, chat_request: ChatRequest, behavior: Behavior) -> Response:
        """Build the completion, or a stream of chunks, after the simulated latency."""
        completion = self._generate_completion(chat_request)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if not chat_request.stream:
            await asyncio.sleep(completion.latency.total_seconds)
            return JSONResponse(completion_body(completion), headers=headers)
        break_after = None
        response_class = StreamingResponse
        if behavior is Behavior.STREAM_ERROR:
            break_after = self.config.stream_error_chunks
            response_class = BrokenStreamResponse
        chunks = stream_chunks(
            completion,
            include_usage=chat_request.include_usage,
            break_after=break_after,
        )
        return response_class(chunks, headers=headers, media_type="text/event-stream")

    def _generate_completion(self, chat_request: ChatRequest) -> Completion:
        digest = request_digest(chat_request.model, chat_request.messages)
        reply = plan_reply(
            digest, chat_request.messages, chat_request.max_tokens, self.config
        )
        return Completion(
            id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
            model=chat_request.model,
            pieces=reply.pieces,
            finish_reason="length" if reply.truncated else "stop",
            usage=reply.usage,
            latency=reply.latency,
        )
