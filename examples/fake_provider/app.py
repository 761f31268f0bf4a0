"""Local fake of the OpenAI Chat Completions API for examples and tests.

Endpoints:

- ``POST /v1/chat/completions`` returns a ``chat.completion`` object, or with
  ``"stream": true`` a server-sent event stream of ``chat.completion.chunk``
  objects. The stream ends with a usage chunk only when
  ``stream_options.include_usage`` is true.
- ``GET /healthz`` returns ``{"status": "ok"}``.
- ``GET /_fake/requests`` returns ``{"requests": [...]}``, the most recent API
  requests (oldest first) with lower-case header names and the parsed JSON body.
  The headers are stored as received, ``authorization`` included.
- ``DELETE /_fake/requests`` clears that list and returns 204.

The reply text depends only on the model, the messages and ``config.seed``. It is
20 to 120 words from a small word list, streamed one word per chunk. With
``max_tokens`` or ``max_completion_tokens`` below the word count, the reply is cut
to that many words and ``finish_reason`` is ``"length"``.

Usage is an estimate, not a tokenizer's count:

- ``prompt_tokens``: 3 per message plus 1 per 4 characters of the message text
  (rounded up), plus 3 that prime the reply.
- ``completion_tokens``: the number of words in the reply, one per stream chunk.
- ``prompt_tokens_details.cached_tokens``: the largest multiple of 128 that is
  smaller than ``prompt_tokens``, if that is at least 1024, else 0. So prompts of
  up to 1024 tokens never report cached tokens.

Latency: the first token comes after a time drawn from ``ttft_min_seconds`` to
``ttft_max_seconds``, each later token after a time drawn from
``token_min_seconds`` to ``token_max_seconds``. The draws depend on the request
and the seed, and all of them are multiplied by ``config.latency_scale``.
Non-streaming responses wait for the sum before they are sent.

A request selects a behaviour with the ``x-fake-behavior`` header or, without
that header, with a model name that ends in ``:<behavior>`` (for example
``gpt-4o-mini:rate_limit``). The response still reports the model as requested.

- ``normal``: respond normally. An explicit ``normal`` also skips the random
  errors.
- ``rate_limit``: 429 with a ``retry-after`` header, error type
  ``rate_limit_error`` and code ``rate_limit_exceeded``.
- ``server_error``: 500 with error type ``server_error``.
- ``overloaded``: 503 with error type ``server_error``.
- ``bad_request``: 400 with error type ``invalid_request_error``.
- ``slow``: wait ``config.slow_seconds`` (not scaled), then respond normally.
  The wait ends early when the client disconnects.
- ``stream_error``: a stream that closes the connection after
  ``config.stream_error_chunks`` content chunks, without ``[DONE]``. Uvicorn logs
  this as an error. Non-streaming requests get a normal response.

Requests that select no behaviour get a 429 with probability
``config.error_rate_429`` and a 500 with probability ``config.error_rate_500``,
drawn from a random generator seeded with ``config.seed``.
An invalid request, such as a body that is not a JSON object, a missing ``model``
or ``messages``, or a field of the wrong type, gets a 400 before any behaviour
applies.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from examples.fake_provider._config import Behavior, FakeProviderConfig
from examples.fake_provider._requests import (
    BEHAVIOR_HEADER,
    ChatRequest,
    InvalidRequestError,
    parse_chat_request,
    read_json_body,
    select_behavior,
)
from examples.fake_provider._responses import (
    BrokenStreamResponse,
    Completion,
    completion_body,
    error_response,
    stream_chunks,
)
from examples.fake_provider._text import (
    estimate_usage,
    generate_reply_pieces,
    plan_latency,
    request_digest,
)

__all__ = ["BEHAVIOR_HEADER", "FakeProviderConfig", "ReceivedRequest", "create_app"]

logger = logging.getLogger(__name__)

_DISCONNECT_POLL_SECONDS = 0.05


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """API request as received, kept for inspection by tests.

    Attributes:
        method: HTTP method.
        path: URL path without the query string.
        headers: Headers with lower-case names. Repeated headers are joined
            with ", ".
        body: Parsed JSON body, or None if the body is not valid JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any


def create_app(config: FakeProviderConfig | None = None) -> Starlette:
    """Create the fake provider application.

    Args:
        config: Provider settings. Defaults to ``FakeProviderConfig()``.

    Returns:
        A Starlette application whose ``state.config`` is the configuration and
        whose ``state.received`` is the deque of ``ReceivedRequest`` records.
    """
    provider = _FakeProvider(config or FakeProviderConfig())
    routes = [
        Route("/v1/chat/completions", provider.chat_completions, methods=["POST"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/_fake/requests", provider.list_requests, methods=["GET"]),
        Route("/_fake/requests", provider.clear_requests, methods=["DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.config = provider.config
    app.state.received = provider.received
    return app


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


class _FakeProvider:
    def __init__(self, config: FakeProviderConfig) -> None:
        self.config = config
        self.received: collections.deque[ReceivedRequest] = collections.deque(
            maxlen=config.max_recorded_requests
        )
        self._error_rng = random.Random(config.seed)

    async def chat_completions(self, request: Request) -> Response:
        body = await read_json_body(request)
        self._record(request, body)
        try:
            chat_request = parse_chat_request(body)
            behavior = select_behavior(request.headers, chat_request.model)
        except InvalidRequestError as error:
            logger.info("rejected invalid request: %s", error)
            return error.to_response()
        if behavior is None:
            behavior = self._draw_random_behavior()
        if behavior is not Behavior.NORMAL:
            logger.info("simulating %s for model %s", behavior, chat_request.model)
        if behavior is Behavior.SLOW:
            await _sleep_until_disconnected(request, self.config.slow_seconds)
        simulated_error = self._simulated_error(behavior)
        if simulated_error is not None:
            return simulated_error
        return await self._completion_response(chat_request, behavior)

    async def list_requests(self, request: Request) -> Response:
        records = [dataclasses.asdict(record) for record in self.received]
        return JSONResponse({"requests": records})

    async def clear_requests(self, request: Request) -> Response:
        self.received.clear()
        return Response(status_code=204)

    def _record(self, request: Request, body: Any) -> None:
        names = dict.fromkeys(request.headers.keys())
        headers = {name: ", ".join(request.headers.getlist(name)) for name in names}
        record = ReceivedRequest(request.method, request.url.path, headers, body)
        self.received.append(record)

    def _draw_random_behavior(self) -> Behavior:
        draw = self._error_rng.random()
        if draw < self.config.error_rate_429:
            return Behavior.RATE_LIMIT
        if draw < self.config.error_rate_429 + self.config.error_rate_500:
            return Behavior.SERVER_ERROR
        return Behavior.NORMAL

    def _simulated_error(self, behavior: Behavior) -> Response | None:
        if behavior is Behavior.RATE_LIMIT:
            retry_after = self.config.retry_after_seconds
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
            message = (
                "Simulated invalid request, selected by the bad_request behaviour."
            )
            return error_response(400, message, "invalid_request_error")
        return None

    async def _completion_response(
        self, chat_request: ChatRequest, behavior: Behavior
    ) -> Response:
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
        pieces = generate_reply_pieces(digest, self.config.seed)
        finish_reason = "stop"
        limit = chat_request.max_tokens
        if limit is not None and limit < len(pieces):
            pieces = pieces[:limit]
            finish_reason = "length"
        return Completion(
            id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
            model=chat_request.model,
            pieces=tuple(pieces),
            finish_reason=finish_reason,
            usage=estimate_usage(chat_request.messages, len(pieces)),
            latency=plan_latency(digest, len(pieces), self.config),
        )


async def _sleep_until_disconnected(request: Request, seconds: float) -> None:
    """Sleep for ``seconds`` or until the client disconnects, whichever is first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        if await request.is_disconnected():
            logger.info("client disconnected during the simulated slow response")
            return
        await asyncio.sleep(min(remaining, _DISCONNECT_POLL_SECONDS))
