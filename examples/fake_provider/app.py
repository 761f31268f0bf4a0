"""Local fake of the OpenAI and Anthropic LLM APIs for examples and tests.

Endpoints:

- ``POST /v1/chat/completions`` (OpenAI Chat Completions) returns a
  ``chat.completion`` object, or with ``"stream": true`` a server-sent event
  stream of ``chat.completion.chunk`` objects. The stream ends with a usage chunk
  only when ``stream_options.include_usage`` is true.
- ``POST /v1/responses`` (OpenAI Responses) reads ``model``, ``input`` (a string
  or an array of input items), ``instructions``, ``max_output_tokens`` and
  ``stream``. It returns a ``response`` object whose output is one assistant
  ``message`` item, or a stream of ``event:`` and ``data:`` lines from
  ``response.created`` to ``response.completed``, which carries the usage. When
  ``max_output_tokens`` cuts the reply, the status is ``incomplete`` with
  ``incomplete_details.reason`` ``max_output_tokens``, and a stream ends with
  ``response.incomplete`` instead.
- ``POST /v1/messages`` (Anthropic Messages) reads ``model``, ``messages``,
  ``system`` (a string or an array of text blocks), ``max_tokens`` (required)
  and ``stream``. It returns a ``message`` object, or a stream of events from
  ``message_start`` to ``message_stop``. ``stop_reason`` is ``max_tokens`` when
  ``max_tokens`` cuts the reply, else ``end_turn``. Errors have the Anthropic
  body ``{"type": "error", "error": {"type": ..., "message": ...}}``.
- ``GET /healthz`` returns ``{"status": "ok"}``.
- ``GET /_fake/requests`` returns ``{"requests": [...]}``, the most recent API
  requests (oldest first) with lower-case header names and the parsed JSON body.
  The headers are stored as received, ``authorization`` included.
- ``DELETE /_fake/requests`` clears that list and returns 204.

The endpoints check no credentials or API version headers, and they ignore the
request fields not named here, such as ``tools`` or ``temperature``.

The reply text depends only on the model, the messages and ``config.seed``. The
Responses API counts ``instructions`` as a system message followed by the input
items, and the Messages API counts ``system`` as a system message followed by
``messages``. The reply is 20 to 120 words from a small word list, streamed one
word per chunk or text delta. With a token limit (``max_tokens``,
``max_completion_tokens`` or ``max_output_tokens``) below the word count, the
reply is cut to that many words and reported as cut, for example with
``finish_reason`` ``"length"``.

Usage is an estimate, not a tokenizer's count:

- Prompt tokens (``prompt_tokens``, or ``input_tokens`` of the Responses API): 3
  per message plus 1 per 4 characters of the message text (rounded up), plus 3
  that prime the reply.
- Completion tokens (``completion_tokens`` or ``output_tokens``): the number of
  words in the reply, plus the reasoning tokens below.
- Cached tokens (``prompt_tokens_details.cached_tokens`` or
  ``input_tokens_details.cached_tokens``): the largest multiple of 128 that is
  smaller than the prompt tokens, if that is at least 1024, else 0. So prompts of
  up to 1024 tokens never report cached tokens.
- Reasoning tokens: for models whose name starts with ``o`` and a digit, such as
  ``o3-mini``, the Responses API reports a multiple of 64 from 64 to 512 in
  ``output_tokens_details.reasoning_tokens``. The count is drawn from the
  request and the seed, and ``output_tokens`` includes it. Reasoning tokens
  count against ``max_output_tokens`` before the reply words, so a low limit can
  leave no output item at all. Other models and the Chat Completions API report
  0, and no response has a ``reasoning`` output item.
- Anthropic cache split: the Messages API reports the cached tokens C of the
  rule above as cache reads and writes. ``cache_read_input_tokens`` is the
  largest multiple of 1024 below C, ``cache_creation_input_tokens`` is the rest
  of C, and ``input_tokens`` is the prompt tokens minus C, because Anthropic's
  ``input_tokens`` excludes cache reads and writes. For example, 1025 prompt
  tokens give 0 read, 1024 written and 1 input token, and 1256 give 1024 read,
  128 written and 104 input tokens.

Latency: the first token comes after a time drawn from ``ttft_min_seconds`` to
``ttft_max_seconds``, each later token after a time drawn from
``token_min_seconds`` to ``token_max_seconds``. The draws depend on the request
and the seed, and all of them are multiplied by ``config.latency_scale``.
Non-streaming responses wait for the sum before they are sent. The streams of
the Responses and Messages APIs send their opening events at once and wait only
before the text deltas.

A request selects a behaviour with the ``x-fake-behavior`` header or, without
that header, with a model name that ends in ``:<behavior>`` (for example
``gpt-4o-mini:rate_limit``). The response still reports the model as requested.
The OpenAI endpoints send OpenAI error bodies, the Messages API Anthropic ones.

- ``normal``: respond normally. An explicit ``normal`` also skips the random
  errors.
- ``rate_limit``: 429 with a ``retry-after`` header and error type
  ``rate_limit_error``, with code ``rate_limit_exceeded`` on OpenAI endpoints.
- ``server_error``: 500 with error type ``server_error``, or ``api_error`` on
  the Messages API.
- ``overloaded``: 503 with error type ``server_error``, or on the Messages API
  529 with ``overloaded_error``.
- ``bad_request``: 400 with error type ``invalid_request_error``.
- ``slow``: wait ``config.slow_seconds`` (not scaled), then respond normally.
  The wait ends early when the client disconnects.
- ``stream_error``: a stream that closes the connection after
  ``config.stream_error_chunks`` content chunks or text deltas, without its
  end (``[DONE]``, ``response.completed`` or ``message_stop``). Uvicorn logs
  this as an error. Non-streaming requests get a normal response.

Requests that select no behaviour get a 429 with probability
``config.error_rate_429`` and a 500 with probability ``config.error_rate_500``,
drawn from a random generator seeded with ``config.seed``.
An invalid request, such as a body that is not a JSON object, a missing
``model``, ``messages``, ``input`` or (Messages API) ``max_tokens``, or a field
of the wrong type, gets a 400 before any behaviour applies.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.fake_provider._anthropic import MessagesEndpoint
from examples.fake_provider._chat import ChatCompletionsEndpoint
from examples.fake_provider._config import Behavior, FakeProviderConfig
from examples.fake_provider._requests import (
    BEHAVIOR_HEADER,
    InvalidRequestError,
    read_json_body,
    select_behavior,
)
from examples.fake_provider._responses_api import ResponsesEndpoint

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


class _ParsedRequest(Protocol):
    @property
    def model(self) -> str: ...


_RequestT = TypeVar("_RequestT", bound=_ParsedRequest)


class _Endpoint(Protocol[_RequestT]):
    """Request parsing, error format and responses of one API endpoint."""

    def parse(self, body: Any) -> _RequestT: ...

    def invalid_request_response(self, error: InvalidRequestError) -> Response: ...

    def simulated_error_response(self, behavior: Behavior) -> Response | None: ...

    async def respond(self, request: _RequestT, behavior: Behavior) -> Response: ...


def create_app(config: FakeProviderConfig | None = None) -> Starlette:
    """Create the fake provider application.

    Args:
        config: Provider settings. Defaults to ``FakeProviderConfig()``.

    Returns:
        A Starlette application whose ``state.config`` is the configuration and
        whose ``state.received`` is the deque of ``ReceivedRequest`` records.
    """
    provider = _FakeProvider(config or FakeProviderConfig())
    endpoints: dict[str, _Endpoint[Any]] = {
        "/v1/chat/completions": ChatCompletionsEndpoint(provider.config),
        "/v1/responses": ResponsesEndpoint(provider.config),
        "/v1/messages": MessagesEndpoint(provider.config),
    }
    routes = [
        Route(path, provider.handler(endpoint), methods=["POST"])
        for path, endpoint in endpoints.items()
    ]
    routes += [
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

    def handler(
        self, endpoint: _Endpoint[_RequestT]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Return the request handler of ``endpoint``."""

        async def handle(request: Request) -> Response:
            return await self._handle(request, endpoint)

        return handle

    async def list_requests(self, request: Request) -> Response:
        records = [dataclasses.asdict(record) for record in self.received]
        return JSONResponse({"requests": records})

    async def clear_requests(self, request: Request) -> Response:
        self.received.clear()
        return Response(status_code=204)

    async def _handle(
        self, request: Request, endpoint: _Endpoint[_RequestT]
    ) -> Response:
        body = await read_json_body(request)
        self._record(request, body)
        try:
            parsed = endpoint.parse(body)
            behavior = select_behavior(request.headers, parsed.model)
        except InvalidRequestError as error:
            logger.info("rejected invalid request to %s: %s", request.url.path, error)
            return endpoint.invalid_request_response(error)
        if behavior is None:
            behavior = self._draw_random_behavior()
        if behavior is not Behavior.NORMAL:
            logger.info("simulating %s for model %s", behavior, parsed.model)
        if behavior is Behavior.SLOW:
            await _sleep_until_disconnected(request, self.config.slow_seconds)
        simulated_error = endpoint.simulated_error_response(behavior)
        if simulated_error is not None:
            return simulated_error
        return await endpoint.respond(parsed, behavior)

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


async def _sleep_until_disconnected(request: Request, seconds: float) -> None:
    """Sleep for ``seconds`` or until the client disconnects, whichever is first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        if await request.is_disconnected():
            logger.info("client disconnected during the simulated slow response")
            return
        await asyncio.sleep(min(remaining, _DISCONNECT_POLL_SECONDS))
