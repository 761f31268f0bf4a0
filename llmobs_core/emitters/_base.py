"""The ``Emitter`` protocol and the fan-out that isolates emitter failures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from opentelemetry.trace import Span

from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core.schema import LLMCallLog

logger = logging.getLogger("llmobs_core.emitters")

WARNING_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class CallStart:
    """The labels of an LLM call that has just started."""

    feature_name: str | None
    model: str
    provider: str | None


@dataclass(frozen=True, slots=True)
class StageEvent:
    """Record of one finished stage (``build_prompt``, ``call_llm``, ...)."""

    stage: str
    feature_name: str | None
    duration_ms: float
    failed: bool
    request_id: str | None
    trace_id: str


@runtime_checkable
class Emitter(Protocol):
    """Backend that receives every call event and stage event.

    Implementations must be thread-safe and fast: they run on the request's
    thread or task, right before the stage's span ends.
    """

    name: str
    """Short name used in the ``emitter`` label of the error counter."""

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        """Handle the event of one finished LLM call whose span is still open."""

    def emit_stage(self, event: StageEvent) -> None:
        """Handle one finished stage."""


@runtime_checkable
class CallStartEmitter(Protocol):
    """Emitter that also wants to know when a call starts (optional).

    Every call passed to ``emit_call_start`` is later passed to
    ``emit_call`` with the same feature name, and its model as the event's
    ``fallback_from`` if set, else as its ``model``.
    """

    def emit_call_start(self, start: CallStart) -> None:
        """Handle the start of an LLM call."""


class EmitterFanout:
    """Send events to every emitter; a failing emitter never affects the others.

    A failure is counted through ``count_error`` and logged at WARNING at most
    once per emitter every ``WARNING_INTERVAL_SECONDS``.
    """

    def __init__(
        self,
        emitters: Sequence[Emitter],
        count_error: Callable[[str], None] | None = None,
    ) -> None:
        self.emitters = tuple(emitters)
        self._starters = tuple(e for e in emitters if isinstance(e, CallStartEmitter))
        self._count_error = count_error
        self._warning = RateLimitedWarning(logger, WARNING_INTERVAL_SECONDS)

    def emit_call(
        self, event: LLMCallLog, span: Span, stage: StageEvent | None = None
    ) -> None:
        """Send a call event, and the call's stage event if given, to every emitter.

        Each emitter gets ``emit_call`` and then ``emit_stage``, in one pass
        over the emitters; a failure of one does not skip the other.
        """
        for emitter in self.emitters:
            try:
                emitter.emit_call(event, span)
            except Exception as error:  # noqa: BLE001 - isolate emitter bugs
                self._report(emitter, error, event.request_id, event.trace_id)
            if stage is not None:
                try:
                    emitter.emit_stage(stage)
                except Exception as error:  # noqa: BLE001 - isolate emitter bugs
                    self._report(emitter, error, stage.request_id, stage.trace_id)

    def emit_call_start(
        self, start: CallStart, request_id: str | None, trace_id: str
    ) -> None:
        """Tell the emitters that want it that a call started."""
        for emitter in self._starters:
            try:
                emitter.emit_call_start(start)
            except Exception as error:  # noqa: BLE001 - isolate emitter bugs
                self._report(emitter, error, request_id, trace_id)

    def emit_stage(self, event: StageEvent) -> None:
        """Send a stage event to every emitter."""
        for emitter in self.emitters:
            try:
                emitter.emit_stage(event)
            except Exception as error:  # noqa: BLE001 - isolate emitter bugs
                self._report(emitter, error, event.request_id, event.trace_id)

    def _report(
        self,
        emitter: object,
        error: Exception,
        request_id: str | None,
        trace_id: str,
    ) -> None:
        name = getattr(emitter, "name", type(emitter).__name__)
        if self._count_error is not None:
            try:
                self._count_error(name)
            except Exception:
                logger.debug("counting an emitter error failed", exc_info=True)
        self._warning.warn(
            name,
            "llmobs emitter %s failed: %r (request_id=%s trace_id=%s)",
            name,
            error,
            request_id,
            trace_id,
        )
