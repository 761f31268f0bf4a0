"""Starlette apps that the server benchmark runs under uvicorn.

The environment variable ``LLMOBS_BENCH_STACK`` chooses the app:

- ``bare``: Starlette alone.
- ``llmobs``: Starlette with ``LLMObsMiddleware``.
- ``otel-asgi``: Starlette with ``opentelemetry-instrumentation-asgi``.
- ``one-span``: Starlette with ``benchmarks._floor.OneSpanMiddleware``, one
  SDK span per request and no other work: the floor of any middleware that
  records one span per request.
- ``llmobs-call``: ``llmobs`` whose route also runs one ``call_llm`` with
  token counts set on the handle, in place of a provider request.

Every app serves ``GET /hello`` with a plain-text body, and every process sets
up the same telemetry (``benchmarks._telemetry``): the OpenTelemetry SDK with
a batch processor and a counting exporter, and llmobs with its default
emitters. Start it with ``uvicorn --factory benchmarks.server_app:create_app``;
importing this module has no side effects.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import llmobs_core as llmobs
from benchmarks._telemetry import Telemetry, set_up_telemetry
from llmobs_asgi import LLMObsMiddleware

STACK_ENV = "LLMOBS_BENCH_STACK"
STACKS = ("bare", "llmobs", "otel-asgi", "one-span", "llmobs-call")
HELLO_PATH = "/hello"
FEATURES = {"/hello": "bench.hello"}
PROMPT = [{"role": "user", "content": "How much protein is in an egg?"}]


async def hello(request: Request) -> PlainTextResponse:
    """Return a fixed plain-text response."""
    return PlainTextResponse("hello")


async def hello_with_call(request: Request) -> PlainTextResponse:
    """Run one observed, stubbed LLM call and return a fixed response."""
    with llmobs.call_llm(model="gpt-4o-mini", provider="openai", prompt=PROMPT) as call:
        call.set_usage(input_tokens=412, output_tokens=128)
    return PlainTextResponse("hello")


def build_app(stack: str, telemetry: Telemetry) -> Starlette:
    """Build the app of one stack.

    Raises:
        ValueError: For an unknown stack name.
    """
    if stack not in STACKS:
        raise ValueError(f"{STACK_ENV}={stack!r} is not one of {', '.join(STACKS)}")
    endpoint = hello_with_call if stack == "llmobs-call" else hello
    middleware: list[Middleware] = []
    if stack in ("llmobs", "llmobs-call"):
        middleware.append(Middleware(LLMObsMiddleware, features=FEATURES))
    elif stack == "one-span":
        from benchmarks._floor import OneSpanMiddleware

        middleware.append(
            Middleware(OneSpanMiddleware, tracer_provider=telemetry.provider)
        )
    elif stack == "otel-asgi":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        middleware.append(
            Middleware(OpenTelemetryMiddleware, tracer_provider=telemetry.provider)
        )
    return Starlette(routes=[Route(HELLO_PATH, endpoint)], middleware=middleware)


def create_app() -> Starlette:
    """Set up telemetry and build the app named by ``LLMOBS_BENCH_STACK``."""
    return build_app(os.environ.get(STACK_ENV, "bare"), set_up_telemetry())
