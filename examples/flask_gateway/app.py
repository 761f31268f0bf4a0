"""Example AI gateway: two LLM features behind Flask, observed with llmobs.

Endpoints, the same as the FastAPI example's:

- ``POST /api/chat/assistant``: product help assistant, feature
  ``chat.assistant``, named by the extension's route map.
- ``POST /api/nutrition/coach``: nutrition advice, feature
  ``nutrition.coach``, named by the ``@llmobs.feature`` decorator. Repeated
  questions are answered from an in-memory cache, one per process.
- ``GET /metrics``: Prometheus metrics, summed over all gunicorn workers
  when ``PROMETHEUS_MULTIPROC_DIR`` is set.
- ``GET /healthz``: liveness, with the pid of the process that answered.

Feature requests take ``{"message": str, "stream": bool}``. A plain request
gets ``{"answer", "model", "sources", "cached"}`` as JSON. A streaming request
gets server-sent events: ``{"delta": text}`` events, then an event named
``done`` with the JSON body above, or one named ``error`` if the provider's
stream broke after text was sent.

Provider failures become 429 (provider rate limit), 504 (provider timeout)
or 502 (any other provider error), and an invalid body becomes 422, each with
``{"error": {"type", "message", "request_id"}}`` as the body.
"""

from __future__ import annotations

import logging
import os

import httpx
import openai
from flask import Flask, Response, jsonify, request
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

import llmobs_core as llmobs
from examples.fastapi_gateway._knowledge import NUTRITION_FACTS, PRODUCT_HELP
from examples.fastapi_gateway._pipeline import Feature
from examples.fastapi_gateway._prompts import ASSISTANT_TEMPLATE, NUTRITION_TEMPLATE
from examples.flask_gateway._pipeline import (
    BEHAVIOR_HEADER,
    ChatRequest,
    Gateway,
    SharedCache,
)
from llmobs_core.context import ContextThreadPoolExecutor
from llmobs_flask import LLMObs, metrics_view

__all__ = ["CHAT_ASSISTANT", "NUTRITION_COACH", "create_app", "extension"]

logger = logging.getLogger("examples.flask_gateway")

CHAT_ASSISTANT = "chat.assistant"
NUTRITION_COACH = "nutrition.coach"

# The fake provider accepts any key. A real deployment reads its key from a
# secret store instead.
API_KEY = "local-demo"

NUTRITION_FOOTER = "General advice only. Ask a dietitian about medical conditions."

# Searches one worker runs at once against the knowledge base.
MAX_CONCURRENT_LOOKUPS = 4

GATEWAY_EXTENSION = "llmobs_example_gateway"

extension = LLMObs(
    features={"/api/chat/*": CHAT_ASSISTANT},
    excluded_paths=["/metrics", "/healthz"],
)
"""The llmobs extension, set up on every app ``create_app`` makes."""


def create_app(
    provider_base_url: str,
    *,
    registry: CollectorRegistry | None = None,
    provider_timeout: float = 10.0,
) -> Flask:
    """Create the gateway app.

    The app does not configure llmobs. Call ``llmobs.configure`` once per
    process (under gunicorn, once per worker), with the same registry as
    given here.

    Args:
        provider_base_url: Base URL of the OpenAI-compatible API, including
            its version path, for example ``http://127.0.0.1:8000/v1``.
        registry: Registry served at ``/metrics`` without
            ``PROMETHEUS_MULTIPROC_DIR``; by default
            ``prometheus_client.REGISTRY``, which llmobs also uses by default.
        provider_timeout: Timeout of each provider request, in seconds.
    """
    client = openai.OpenAI(
        base_url=provider_base_url,
        api_key=API_KEY,
        max_retries=0,
        timeout=provider_timeout,
    )
    lookups = ContextThreadPoolExecutor(
        max_workers=MAX_CONCURRENT_LOOKUPS, thread_name_prefix="knowledge"
    )
    gateway = Gateway(client, _build_features(), lookups)

    app = Flask(__name__)
    extension.init_app(app)
    _add_feature_routes(app, gateway)
    app.add_url_rule("/metrics", view_func=metrics_view(registry))
    app.add_url_rule("/healthz", view_func=_healthz)
    _add_error_handlers(app)
    # close_app() finds the provider client and thread pool here.
    app.extensions[GATEWAY_EXTENSION] = gateway
    return app


def close_app(app: Flask) -> None:
    """Close the provider client and the lookup threads of a gateway app."""
    gateway = app.extensions.pop(GATEWAY_EXTENSION, None)
    if gateway is not None:
        gateway.close()


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
            cache=SharedCache(max_entries=256),
            footer=NUTRITION_FOOTER,
        ),
    ]
    return {feature.name: feature for feature in features}


def _add_feature_routes(app: Flask, gateway: Gateway) -> None:
    @app.post("/api/chat/assistant")
    def chat_assistant() -> Response:
        """Answer a product question."""
        return _respond(gateway, CHAT_ASSISTANT)

    @app.post("/api/nutrition/coach")
    @llmobs.feature(NUTRITION_COACH)
    def nutrition_coach() -> Response:
        """Give general nutrition advice, from the cache for repeated questions."""
        return _respond(gateway, NUTRITION_COACH)


def _respond(gateway: Gateway, feature_name: str) -> Response:
    body = ChatRequest.model_validate(request.get_json(silent=True))
    behavior = request.headers.get(BEHAVIOR_HEADER)
    return gateway.respond(feature_name, body, behavior)


def _healthz() -> Response:
    """Report that the process serves requests, and which process it is."""
    return jsonify({"status": "ok", "pid": os.getpid()})


def _add_error_handlers(app: Flask) -> None:
    # Flask picks the handler of the most specific class in the exception's
    # MRO, so RateLimitError and APITimeoutError win over APIError. Handled
    # exceptions never reach llmobs as errors: the span records the status.
    app.register_error_handler(ValidationError, _invalid_request)
    app.register_error_handler(openai.RateLimitError, _provider_rate_limited)
    app.register_error_handler(openai.APITimeoutError, _provider_timed_out)
    app.register_error_handler(openai.APIError, _provider_failed)
    app.register_error_handler(httpx.HTTPError, _provider_failed)


def _invalid_request(error: ValidationError) -> Response:
    fields = sorted({".".join(map(str, e["loc"])) or "body" for e in error.errors()})
    message = (
        'Invalid request body: expected {"message": str, "stream": bool}; '
        f"invalid or unknown: {', '.join(fields)}."
    )
    # Not logged: the client's mistake, and the error's text holds its input.
    return _error_body(422, "invalid_request", message)


def _provider_rate_limited(error: openai.RateLimitError) -> Response:
    message = "The model provider is rate limiting requests. Retry later."
    response = _error_response(429, "rate_limited", message, error)
    retry_after = error.response.headers.get("retry-after")
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def _provider_timed_out(error: openai.APITimeoutError) -> Response:
    message = "The request to the model provider timed out."
    return _error_response(504, "timeout", message, error)


def _provider_failed(error: Exception) -> Response:
    message = "The request to the model provider failed."
    return _error_response(502, "provider_error", message, error)


def _error_response(
    status_code: int, error_type: str, message: str, error: Exception
) -> Response:
    logger.warning(
        "provider call failed, responding with %d: request_id=%s error=%r",
        status_code,
        _request_id(),
        error,
    )
    return _error_body(status_code, error_type, message)


def _error_body(status_code: int, error_type: str, message: str) -> Response:
    body = {"type": error_type, "message": message, "request_id": _request_id()}
    response = jsonify({"error": body})
    response.status_code = status_code
    return response


def _request_id() -> str | None:
    context = llmobs.current_context()
    return context.request_id if context is not None else None
