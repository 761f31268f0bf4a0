"""llmobs for ASGI apps: Starlette and FastAPI."""

from llmobs_asgi.metrics import metrics_endpoint
from llmobs_asgi.middleware import LLMObsMiddleware

__all__ = ["LLMObsMiddleware", "metrics_endpoint"]
