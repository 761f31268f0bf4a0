"""Flask view serving Prometheus metrics, across workers under gunicorn."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Response, request
from prometheus_client import CollectorRegistry

from llmobs_core.exposition import render_metrics

__all__ = ["metrics_view"]

logger = logging.getLogger(__name__)


def metrics_view(registry: CollectorRegistry | None = None) -> Callable[[], Response]:
    """Build a view that serves the metrics for a Prometheus scrape.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, every scrape aggregates all
    worker processes; otherwise it serves ``registry`` (by default
    ``prometheus_client.REGISTRY``). Register it with
    ``app.add_url_rule("/metrics", view_func=metrics_view())`` and exclude
    the path from the llmobs middleware.

    Args:
        registry: Registry served in single-process mode.
    """

    def metrics() -> Response:
        try:
            body, content_type = render_metrics(registry, request.headers.get("Accept"))
        except RuntimeError as error:
            logger.error("serving metrics failed: %s", error)
            return Response(f"{error}\n", status=500, mimetype="text/plain")
        return Response(body, content_type=content_type)

    return metrics
