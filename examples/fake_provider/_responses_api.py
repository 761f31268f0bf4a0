"""Endpoint of the OpenAI Responses API, ``POST /v1/responses``."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from examples.fake_provider._config import Behavior, FakeProviderConfig
from examples.fake_provider._requests import (
    InvalidRequestError,
    optional_field,
    positive_int_field,
    require_model,
)
from examples.fake_provider._responses import (
    BrokenStreamResponse,
    simulated_error_response,
)
from examples.fake_provider._responses_body import (
    GeneratedResponse,
    response_body,
    stream_events,
)
from examples.fake_provider._text import plan_reply, request_digest

_REASONING_MODEL_PATTERN = re.compile(r"o\d")
_REASONING_TOKEN_STEP = 64
_MAX_REASONING_STEPS = 8


@dataclasses.dataclass(frozen=True)
class ResponsesRequest:
    """Fields of a Responses API request that the provider uses.

    Attributes:
        model: Model name as requested.
        instructions: System instructions, or None.
        messages: Chat messages that the prompt estimate and the reply use.
            The instructions come first as a system message, then the input
            items.
        max_output_tokens: Maximum number of output tokens, reasoning tokens
            included, or None for no limit.
        stream: Whether the response is a server-sent event stream.
    """

    model: str
    instructions: str | None
    messages: list[Any]
    max_output_tokens: int | None
    stream: bool


def parse_responses_request(body: Any) -> ResponsesRequest:
    """Validate a parsed request body and extract the fields the provider uses.

    Raises:
        InvalidRequestError: The body is not a JSON object, or a field is missing
            or has the wrong type. The message names the field.
    """
    model = require_model(body)
    items = _input_items(body.get("input"))
    instructions = optional_field(body, "instructions", str, default="")
    messages = [{"role": "system", "content": instructions}] if instructions else []
    return ResponsesRequest(
        model=model,
        instructions=instructions or None,
        messages=messages + items,
        max_output_tokens=positive_int_field(body, "max_output_tokens"),
        stream=optional_field(body, "stream", bool, default=False),
    )


def is_reasoning_model(model: str) -> bool:
    """Return whether ``model`` names an o-series model, such as ``o3-mini``."""
    return _REASONING_MODEL_PATTERN.match(model) is not None


class ResponsesEndpoint:
    """Request parsing, errors and responses of the Responses API."""

    def __init__(self, config: FakeProviderConfig) -> None:
        self.config = config

    def parse(self, body: Any) -> ResponsesRequest:
        """Validate a parsed request body, see ``parse_responses_request``."""
        return parse_responses_request(body)

    def invalid_request_response(self, error: InvalidRequestError) -> Response:
        """Build the 400 response with the OpenAI error body."""
        return error.to_response()

    def simulated_error_response(self, behavior: Behavior) -> Response | None:
        """Build the OpenAI error response that ``behavior`` simulates, if any."""
        return simulated_error_response(behavior, self.config)

    async def respond(self, request: ResponsesRequest, behavior: Behavior) -> Response:
        """Build the response, or a stream of events, after the simulated latency."""
        generated = self._generate(request)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if not request.stream:
            await asyncio.sleep(generated.reply.latency.total_seconds)
            body = response_body(generated, generated.final_status)
            return JSONResponse(body, headers=headers)
        break_after = None
        response_class = StreamingResponse
        if behavior is Behavior.STREAM_ERROR:
            break_after = self.config.stream_error_chunks
            response_class = BrokenStreamResponse
        events = stream_events(generated, break_after)
        return response_class(events, headers=headers, media_type="text/event-stream")

    def _generate(self, request: ResponsesRequest) -> GeneratedResponse:
        digest = request_digest(request.model, request.messages)
        reasoning_tokens = self._reasoning_tokens(request.model, digest)
        text_limit = request.max_output_tokens
        if text_limit is not None:
            # Reasoning comes first and counts against max_output_tokens.
            reasoning_tokens = min(reasoning_tokens, text_limit)
            text_limit -= reasoning_tokens
        reasoning = is_reasoning_model(request.model)
        return GeneratedResponse(
            response_id=f"resp_{uuid.uuid4().hex}",
            message_id=f"msg_{uuid.uuid4().hex}",
            created_at=int(time.time()),
            model=request.model,
            instructions=request.instructions,
            max_output_tokens=request.max_output_tokens,
            reasoning_effort="medium" if reasoning else None,
            reasoning_tokens=reasoning_tokens,
            reply=plan_reply(digest, request.messages, text_limit, self.config),
        )

    def _reasoning_tokens(self, model: str, digest: str) -> int:
        """Draw a multiple of 64 from 64 to 512 for o-series models, else 0."""
        if not is_reasoning_model(model):
            return 0
        rng = random.Random(f"reasoning:{self.config.seed}:{digest}")
        return rng.randint(1, _MAX_REASONING_STEPS) * _REASONING_TOKEN_STEP


def _input_items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        message = "Missing or invalid 'input': expected a string or a non-empty array."
        raise InvalidRequestError(message, "input")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not (
            isinstance(item.get("role"), str) or isinstance(item.get("type"), str)
        ):
            param = f"input[{index}]"
            message = f"Invalid '{param}': expected an object with a 'role' or 'type'."
            raise InvalidRequestError(message, param)
    return value
