"""llmobs for Flask and any other WSGI app."""

from llmobs_flask.extension import LLMObs
from llmobs_flask.metrics import metrics_view
from llmobs_flask.wsgi import LLMObsWSGIMiddleware

__all__ = ["LLMObs", "LLMObsWSGIMiddleware", "metrics_view"]
