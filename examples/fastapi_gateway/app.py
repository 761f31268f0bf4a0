"""Example AI gateway: two LLM features behind FastAPI, observed with llmobs.

Endpoints:

- ``POST /api/chat/assistant``: product help assistant, feature
  ``chat.assistant``, named by the middleware's route map.
- ``POST /api/nutrition/coach``: nutrition advice, feature
  ``nutrition.coach``, named by the ``@llmobs.feature`` decorator. Repeated
  questions are answered from an in-memory cache.
- ``GET /metrics``: Prometheus metrics. ``GET /healthz``: liveness.

Feature requests take ``{"message": str, "stream": bool}``. A plain request
gets ``{"answer", "model", "sources", "cached"}`` as JSON. A streaming request
gets server-sent events: ``{"delta": text}`` events, then an event named
``done`` with the JSON body above, or one named ``error`` if the provider's
stream broke after text was sent.

Provider failures become 429 (provider rate limit), 504 (provider timeout)
or 502 (any other provider error), with
``{"error": {"type", "message", "request_id"}}`` as the body.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)

import llmobs_core as llmobs
from examples.fastapi_gateway._cache import ResponseCache
from examples.fastapi_gateway._knowledge import NUTRITION_FACTS, PRODUCT_HELP
from examples.fastapi_gateway._pipeline import (
    BEHAVIOR_HEADER,
    ChatRequest,
    Feature,
    Gateway,
)
from examples.fastapi_gateway._prompts import ASSISTANT_TEMPLATE, NUTRITION_TEMPLATE
from llmobs_asgi import LLMObsMiddleware

__all__ = ["CHAT_ASSISTANT", "NUTRITION_COACH", "create_app"]

logger = logging.getLogger("examples.fastapi_gateway")

CHAT_ASSISTANT = "chat.assistant"
NUTRITION_COACH = "nutrition.coach"

# The fake provider accepts any key. A real deployment reads its key from a
# secret store instead.
API_KEY = "local-demo"

NUTRITION_FOOTER = "General advice only. Ask a dietitian about medical conditions."


def create_app(
    provider_base_url: str,
    *,
    registry: CollectorRegistry | None = None,
    provider_timeout: float = 10.0,
) -> FastAPI:
    """Create the gateway app.

    The app does not configure llmobs. Call ``llmobs.configure`` once at
    start-up, with the same registry as given here.

    Args:
        provider_base_url: Base URL of the OpenAI-compatible API, including
            its version path, for example ``http://127.0.0.1:8000/v1``.
        registry: Registry served at ``/metrics``, by default
            ``prometheus_client.REGISTRY``, which llmobs also uses by default.
        provider_timeout: Timeout of each provider request, in seconds.
    """
    features = _build_features()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = openai.AsyncOpenAI(
            base_url=provider_base_url,
            api_key=API_KEY,
            max_retries=0,
            timeout=provider_timeout,
        )
        app.state.gateway = Gateway(client, features)
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(title="llmobs example gateway", lifespan=lifespan)
    app.add_middleware(
        LLMObsMiddleware,
        features={"/api/chat/*": CHAT_ASSISTANT},
        excluded_paths=["/metrics", "/healthz"],
    )
    _add_feature_routes(app)
    _add_operational_routes(app, REGISTRY if registry is None else registry)
    _add_exception_handlers(app)
    return app


def _build_features() -> dict[str, Feature]:
    features = [
        Feature(
            name=CHAT_ASSISTANT,
            model="gpt-4o-mini",
            template=ASSISTANT_TEMPLATE,
            knowledge=PRODUCT_HELP,
            max_output_tokens=80,
            max_answer_chars=600,
        ),
        Feature(
            name=NUTRITION_COACH,
            model="gpt-4.1-mini",
            template=NUTRITION_TEMPLATE,
            knowledge=NUTRITION_FACTS,
            max_output_tokens=60,
            max_answer_chars=400,
            cache=ResponseCache(max_entries=256),
            footer=NUTRITION_FOOTER,
        ),
    ]
    return {feature.name: feature for feature in features}


def _add_feature_routes(app: FastAPI) -> None:
    @app.post("/api/chat/assistant", response_model=None)
    async def chat_assistant(body: ChatRequest, request: Request) -> Response:
        """Answer a product question."""
        return await _respond(request, CHAT_ASSISTANT, body)

    @app.post("/api/nutrition/coach", response_model=None)
    @llmobs.feature(NUTRITION_COACH)
    async def nutrition_coach(body: ChatRequest, request: Request) -> Response:
        """Give general nutrition advice, from the cache for repeated questions."""
        return await _respond(request, NUTRITION_COACH, body)


async def _respond(request: Request, feature_name: str, body: ChatRequest) -> Response:
    gateway: Gateway = request.app.state.gateway
    behavior = request.headers.get(BEHAVIOR_HEADER)
    return await gateway.respond(feature_name, body, behavior)


def _add_operational_routes(app: FastAPI, registry: CollectorRegistry) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Serve the registry in the Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Report that the process serves requests."""
        return {"status": "ok"}


def _add_exception_handlers(app: FastAPI) -> None:
    # FastAPI picks the handler of the most specific class in the exception's
    # MRO, so RateLimitError and APITimeoutError win over APIError.
    app.add_exception_handler(openai.RateLimitError, _provider_rate_limited)
    app.add_exception_handler(openai.APITimeoutError, _provider_timed_out)
    app.add_exception_handler(openai.APIError, _provider_failed)
    app.add_exception_handler(httpx.HTTPError, _provider_failed)


async def _provider_rate_limited(request: Request, error: Exception) -> Response:
    headers = {}
    if isinstance(error, openai.RateLimitError):
        retry_after = error.response.headers.get("retry-after")
        if retry_after is not None:
            headers["Retry-After"] = retry_after
    message = "The model provider is rate limiting requests. Retry later."
    return _error_response(429, "rate_limited", message, error, headers)


async def _provider_timed_out(request: Request, error: Exception) -> Response:
    message = "The request to the model provider timed out."
    return _error_response(504, "timeout", message, error)


async def _provider_failed(request: Request, error: Exception) -> Response:
    message = "The request to the model provider failed."
    return _error_response(502, "provider_error", message, error)


def _error_response(
    status_code: int,
    error_type: str,
    message: str,
    error: Exception,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    context = llmobs.current_context()
    request_id = context.request_id if context is not None else None
    logger.warning(
        "provider call failed, responding with %d: request_id=%s error=%r",
        status_code,
        request_id,
        error,
    )
    body = {"type": error_type, "message": message, "request_id": request_id}
    return JSONResponse({"error": body}, status_code=status_code, headers=headers)
