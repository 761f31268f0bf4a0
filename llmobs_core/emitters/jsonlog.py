"""Write each LLM call as one JSON line on the ``llmobs.events`` logger."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from opentelemetry.trace import Span

from llmobs_core.emitters._base import StageEvent
from llmobs_core.schema import LLMCallLog

EVENTS_LOGGER = "llmobs.events"

_HANDLER_MARK = "_llmobs_json_handler"


class JsonLogEmitter:
    """Log every call event as one JSON line at INFO on ``llmobs.events``.

    The message is the event serialized by pydantic, one line, no other text;
    where it goes is up to the application's logging configuration, or to
    ``install_json_handler``. Stage events are not logged.
    """

    name = "jsonlog"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(EVENTS_LOGGER)

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        """Log the event, if the logger is enabled for INFO."""
        if self._logger.isEnabledFor(logging.INFO):
            self._logger.info("%s", event.model_dump_json())

    def emit_stage(self, event: StageEvent) -> None:
        """Ignore stage events: they appear in metrics and spans only."""


def install_json_handler(
    stream: TextIO | None = None, *, logger_name: str = EVENTS_LOGGER
) -> logging.Handler:
    """Send ``llmobs.events`` lines to a stream, one bare JSON object a line.

    For applications without a logging configuration of their own. The
    logger's level is set to INFO and it stops propagating to the root logger,
    so the lines are not printed twice. Calling it again replaces the handler
    it installed before.

    Args:
        stream: Where to write, by default ``sys.stdout``.
        logger_name: The logger to configure.

    Returns:
        The installed handler.
    """
    logger = logging.getLogger(logger_name)
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    setattr(handler, _HANDLER_MARK, True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    return handler
