"""llmobs for ASGI apps: Starlette and FastAPI."""

from llmobs_asgi.middleware import LLMObsMiddleware

__all__ = ["LLMObsMiddleware"]
