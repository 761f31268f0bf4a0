"""Flask extension that installs the llmobs WSGI middleware on an app."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, got_request_exception, request, request_started

from llmobs_core.server import HeaderNames, ServerSettings
from llmobs_flask.wsgi import (
    ENVIRON_ERROR_KEY,
    ENVIRON_KEY,
    ENVIRON_ROUTE_KEY,
    LLMObsWSGIMiddleware,
)

__all__ = ["LLMObs"]

logger = logging.getLogger(__name__)

EXTENSION_NAME = "llmobs"


class LLMObs:
    """Observe a Flask app's requests and LLM calls with llmobs.

    The usual Flask extension pattern: ``LLMObs(app, ...)``, or
    ``llmobs = LLMObs(...)`` then ``llmobs.init_app(app)`` in an app factory.
    One instance may be initialized on several apps.

    ``init_app`` wraps ``app.wsgi_app`` in ``LLMObsWSGIMiddleware`` and
    connects to Flask's ``request_started`` signal, to record the matched
    route template (``request.script_root`` plus ``request.url_rule``), and
    ``got_request_exception``, to record an exception Flask turned into a 500
    response. Both receivers take the signals of every Flask app but act only
    on requests that an llmobs middleware is serving, so an app mounted
    inside an observed app (with ``DispatcherMiddleware``) needs no extension
    of its own.

    Args:
        app: The app to set up now, or None to call ``init_app`` later.
        headers: Request header names; ``HeaderNames()`` by default.
        features: Map of path pattern (shell wildcards) to feature name.
        excluded_paths: Path patterns passed through untouched.
        region: Region for requests without a region header.

    Raises:
        TypeError, ValueError: For invalid patterns or feature names, when
            the extension is created.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        headers: HeaderNames | None = None,
        features: Mapping[str, str] | None = None,
        excluded_paths: Sequence[str] = (),
        region: str | None = None,
    ) -> None:
        self.options: dict[str, Any] = {
            "headers": headers,
            "features": dict(features or {}),
            "excluded_paths": tuple(excluded_paths),
            "region": region,
        }
        # Checked here, so a mistake fails at import time rather than in
        # the app factory.
        ServerSettings(**self.options)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install llmobs on ``app``.

        Raises:
            RuntimeError: If llmobs is already installed on this app.
        """
        if EXTENSION_NAME in app.extensions:
            raise RuntimeError(
                f"llmobs is already installed on Flask app {app.name!r}; "
                "call init_app() once per app"
            )
        app.wsgi_app = LLMObsWSGIMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, **self.options
        )
        # Connecting the same receiver again does nothing.
        request_started.connect(_record_route, weak=False)
        got_request_exception.connect(_record_exception, weak=False)
        app.extensions[EXTENSION_NAME] = self


def _record_route(sender: Flask, **extra: Any) -> None:
    """Record the route template. A failure to read it leaves the route unset."""
    environ = request.environ
    if ENVIRON_KEY not in environ:
        return
    try:
        rule = request.url_rule
        if rule is not None:
            environ[ENVIRON_ROUTE_KEY] = request.script_root + rule.rule
    except Exception:
        logger.debug("resolving the route template failed", exc_info=True)


def _record_exception(sender: Flask, exception: BaseException, **extra: Any) -> None:
    environ = request.environ
    if ENVIRON_KEY in environ:
        environ[ENVIRON_ERROR_KEY] = exception
