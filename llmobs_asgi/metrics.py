"""Starlette endpoint serving Prometheus metrics, across workers if needed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from llmobs_core.exposition import render_metrics

__all__ = ["metrics_endpoint"]

logger = logging.getLogger(__name__)


def metrics_endpoint(
    registry: CollectorRegistry | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """Build an endpoint that serves the metrics for a Prometheus scrape.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, every scrape aggregates all
    worker processes; otherwise it serves ``registry`` (by default
    ``prometheus_client.REGISTRY``). Register it with
    ``app.add_route("/metrics", metrics_endpoint())`` and exclude the path
    from the llmobs middleware.

    Args:
        registry: Registry served in single-process mode.
    """

    async def metrics(request: Request) -> Response:
        try:
            body, content_type = render_metrics(registry, request.headers.get("accept"))
        except RuntimeError as error:
            logger.error("serving metrics failed: %s", error)
            return PlainTextResponse(f"{error}\n", status_code=500)
        return Response(body, media_type=content_type)

    return metrics
