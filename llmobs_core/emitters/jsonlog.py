"""Write each LLM call as one JSON line on the ``llmobs.events`` logger."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import TextIO

from opentelemetry.trace import Span
from pydantic import BaseModel

from llmobs_core.emitters._base import StageEvent
from llmobs_core.emitters._writer import BackgroundWriter
from llmobs_core.schema import LLMCallLog

EVENTS_LOGGER = "llmobs.events"

_HANDLER_MARK = "_llmobs_json_handler"


DEFAULT_QUEUE_SIZE = 10_000


class JsonLogEmitter:
    """Log every call event as one JSON line at INFO on ``llmobs.events``.

    The message is the event serialized by pydantic, one line, no other text;
    where it goes is up to the application's logging configuration, or to
    ``install_json_handler``. Stage events are not logged.

    The event is serialized on the caller's thread, and by default the
    logging call runs on a background thread, fed by a bounded queue, so a
    slow log sink never delays a request. The queue contains the JSON lines, not
    the events: strings are not tracked by the garbage collector, while
    events that wait in the queue would survive collections and make the
    collector scan the whole heap more often. When the queue is full, events
    are dropped and counted through ``on_drop``
    (``llmobs_events_dropped_total``), never waited for.
    ``llmobs_core.flush()`` waits for the queue; it also runs at exit.

    Args:
        logger: The logger; by default ``llmobs.events``.
        background: False to log on the caller's thread.
        queue_size: Events held while the writer catches up.
        on_drop: Called for each dropped event.
    """

    name = "jsonlog"

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        background: bool = True,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self._logger = logger or logging.getLogger(EVENTS_LOGGER)
        # A Logger subclass may change how info() makes records, so only
        # logging.Logger's own records are built here directly.
        logger_class = type(self._logger)
        self._plain_logger = (
            logger_class.info is logging.Logger.info
            and logger_class._log is logging.Logger._log
            and logger_class.findCaller is logging.Logger.findCaller
        )
        self._writer: BackgroundWriter[str] | None = None
        if background:
            self._writer = BackgroundWriter(
                self.name, self._log, max_items=queue_size, on_drop=on_drop
            )

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        """Log the event, if the logger is enabled for INFO."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        line = json_line(event)
        if self._writer is None:
            self._log(line)
        else:
            self._writer.submit(line)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until queued events are logged; True if done in time."""
        return self._writer is None or self._writer.flush(timeout)

    def _log(self, line: str) -> None:
        # Logs as self._logger.info("%s", line) does, with the same record,
        # but takes the caller's file, line and function from this frame
        # instead of logging's walk up the stack, which finds this frame too.
        logger = self._logger
        if not self._plain_logger:
            logger.info("%s", line)
            return
        if not logger.isEnabledFor(logging.INFO):
            return
        if logging._srcfile is None:
            # Caller lookup switched off, as the logging HOWTO describes.
            filename, lineno, function = "(unknown file)", 0, "(unknown function)"
        else:
            # The frame is not kept in a local: a frame that refers to
            # itself through its locals is a reference cycle, freed only by
            # the garbage collector, with the record and the line in it.
            code = sys._getframe().f_code
            filename, function = code.co_filename, code.co_name
            lineno = sys._getframe().f_lineno
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            filename,
            lineno,
            "%s",
            (line,),
            None,
            function,
        )
        logger.handle(record)

    def emit_stage(self, event: StageEvent) -> None:
        """Ignore stage events: they appear in metrics and spans only."""


def json_line(event: BaseModel) -> str:
    """Return an event as one JSON line, as pydantic writes it when it can."""
    try:
        return event.model_dump_json()
    except ValueError:  # pydantic's serialization error, for a lone surrogate
        return _escaped_json(event)


def _escaped_json(event: BaseModel) -> str:
    r"""Return the event's JSON line with every non-ASCII character escaped.

    pydantic cannot write a string with a lone surrogate as UTF-8, and such
    strings come from JSON text with ``\ud800`` escapes: a provider's
    response model, an application's tenant. Escaped, the line stays valid
    JSON with the same fields in the same order, and parsers read the same
    strings back.
    """
    fields = event.model_dump(mode="json")
    for name, value in fields.items():
        if isinstance(value, dict):
            # The JSON mode replaces lone surrogates in dict keys. The
            # events' dicts (extra) map strings to strings, so they are
            # taken as they are.
            fields[name] = getattr(event, name)
    return json.dumps(fields, separators=(",", ":"))


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
