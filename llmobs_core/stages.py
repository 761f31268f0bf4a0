"""Scope the four pipeline stages of an LLM request.

The helpers are ``build_prompt``, ``retrieve_context``, ``call_llm`` and
``postprocess``. Each returns a scope that works as ``with``, ``async with``
and as a decorator. A scope starts a child span of the current span named
after the stage, makes it current inside, and on exit ends it and records the
stage's duration. ``call_llm`` also emits one ``LLMCallLog`` per call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from llmobs_core import _ids
from llmobs_core import _semconv as semconv
from llmobs_core._call import LLMCall
from llmobs_core._ids import format_trace_id
from llmobs_core._spans import (
    detach_context,
    record_exception_type,
    reset_variable,
    start_span,
)
from llmobs_core.config import get_config
from llmobs_core.context import RequestState, current_feature, llmobs_request
from llmobs_core.emitters import EmitterFanout, StageEvent

__all__ = [
    "LLMCallScope",
    "StageScope",
    "build_prompt",
    "call_llm",
    "current_call",
    "observe_llm_call",
    "postprocess",
    "retrieve_context",
]

P = ParamSpec("P")
R = TypeVar("R")

llmobs_call: ContextVar[LLMCall | None] = ContextVar("llmobs_call", default=None)


class StageScope:
    """One run of a pipeline stage; single use as a context manager.

    Used as a decorator, it starts a fresh run for every call of the function.
    """

    kind = SpanKind.INTERNAL

    def __init__(self, stage: str, attributes: dict[str, str] | None = None) -> None:
        self.stage = stage
        self.attributes = attributes or {}
        self.span: Span | None = None
        self._started_ns = 0
        self._feature: str | None = None
        self._token: Token[Any] | None = None
        self._state: RequestState | None = None
        self._fanout: EmitterFanout | None = None
        self._generation = 0
        # Popped by the first completion; list.pop() is atomic, so two
        # threads ending the stage at once cannot both complete it.
        self._incomplete = [True]

    def _fresh(self) -> Self:
        return type(self)(self.stage, self.attributes)

    def _start(self) -> None:
        self._begin(current_feature())

    def _begin(self, feature_name: str | None) -> None:
        """Start the stage's span, with ``feature_name`` as its feature."""
        if self.span is not None:
            raise RuntimeError(
                f"{self.stage}() scope was already entered; call {self.stage}() "
                "again for each 'with' block"
            )
        config = get_config()
        self._fanout = config.fanout
        self._generation = _ids.fork_generation
        self._state = llmobs_request.get()
        self._feature = feature_name
        attributes: dict[str, Any] = {semconv.LLM_STAGE: self.stage}
        for name, value in self.attributes.items():
            attributes[name] = (
                semconv.attribute_text(value) if isinstance(value, str) else value
            )
        if self._feature is not None:
            attributes[semconv.LLM_FEATURE_NAME] = semconv.attribute_text(self._feature)
        self.span = start_span(
            config.tracer, self.stage, kind=self.kind, attributes=attributes
        )
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        self._started_ns = time.perf_counter_ns()

    def _finish(self, error: BaseException | None) -> None:
        """Leave the scope: complete the stage unless something else will."""
        try:
            if not self._deferred(error):
                self._complete(error)
        finally:
            detach_context(self._token)

    def _deferred(self, error: BaseException | None) -> bool:
        """Return whether the stage completes later than its scope's exit."""
        return False

    def _complete(self, error: BaseException | None) -> None:
        """Emit the stage's events and end its span, the first time only."""
        try:
            self._incomplete.pop()
        except IndexError:
            return
        if self._generation != _ids.fork_generation:
            # A forked child's copy of a stage its parent ends.
            return
        span = self.span
        assert span is not None  # _start() ran
        duration_ms = (time.perf_counter_ns() - self._started_ns) / 1e6
        try:
            self._emit(span, error, duration_ms)
        finally:
            if _is_failure(error) and span.is_recording():
                assert error is not None
                record_exception_type(span, error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()

    def _emit(
        self, span: Span, error: BaseException | None, duration_ms: float
    ) -> None:
        self._emit_stage(
            error, duration_ms, format_trace_id(span.get_span_context().trace_id)
        )

    def _emit_stage(
        self, error: BaseException | None, duration_ms: float, trace_id: str
    ) -> None:
        assert self._fanout is not None  # _start() ran
        self._fanout.emit_stage(self._stage_event(error, duration_ms, trace_id))

    def _stage_event(
        self, error: BaseException | None, duration_ms: float, trace_id: str
    ) -> StageEvent:
        state = self._state
        return StageEvent(
            stage=self.stage,
            feature_name=self._feature,
            duration_ms=duration_ms,
            failed=error is not None,
            request_id=state.request_id if state is not None else None,
            trace_id=trace_id,
        )

    def __enter__(self) -> Self:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exc)

    @overload
    def __call__(
        self, function: Callable[P, Awaitable[R]]
    ) -> Callable[P, Awaitable[R]]: ...

    @overload
    def __call__(self, function: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, function: Callable[P, Any]) -> Callable[P, Any]:
        """Wrap a sync or async function so each call runs as a new stage.

        Raises:
            TypeError: For a generator function, whose body runs after the call
                returns; use ``with`` inside the generator instead.
        """
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(
            function
        ):
            raise TypeError(
                f"{self.stage}() cannot decorate generator function "
                f"{function.__qualname__}; use 'with {self.stage}(...)' inside it"
            )
        if inspect.iscoroutinefunction(function):
            async_function = cast(Callable[P, Awaitable[Any]], function)

            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                run = self._fresh()
                async with run:
                    result = await async_function(*args, **kwargs)
                    run._on_return(result)
                return result

            return run_async

        @functools.wraps(function)
        def run_sync(*args: P.args, **kwargs: P.kwargs) -> Any:
            run = self._fresh()
            with run:
                result = function(*args, **kwargs)
                run._on_return(result)
            return result

        return run_sync

    def _on_return(self, result: object) -> None:
        """Handle the decorated function's return value; stages ignore it."""


class LLMCallScope(StageScope):
    """One LLM call: a ``call_llm`` span plus one event on exit.

    ``with`` yields the ``LLMCall`` handle. As a decorator, the handle is
    available inside through ``current_call()``, and the return value is
    passed to ``LLMCall.record`` unless usage was set explicitly.
    """

    kind = SpanKind.CLIENT

    def __init__(
        self,
        stage: str = "call_llm",
        attributes: dict[str, str] | None = None,
        *,
        call_arguments: dict[str, Any],
    ) -> None:
        super().__init__(stage, attributes)
        self._call_arguments = call_arguments
        self.call: LLMCall | None = None
        self._call_token: Token[LLMCall | None] | None = None

    def _fresh(self) -> Self:
        return type(self)(
            self.stage, self.attributes, call_arguments=self._call_arguments
        )

    def _start(self) -> None:
        # observe_llm_call() may name a feature other than the current one;
        # it is resolved once here, for the span, the call and the stage.
        arguments = self._call_arguments
        feature_name = arguments["feature_name"] or current_feature()
        self._begin(feature_name)
        span = self.span
        assert span is not None
        try:
            call = LLMCall(span=span, **{**arguments, "feature_name": feature_name})
        except BaseException as error:
            # No handle, so no exit: end the span and restore the context now,
            # or the span would stay open and be the parent of later spans.
            try:
                record_exception_type(span, error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.end()
            finally:
                detach_context(self._token)
                self._token = None
            raise
        self.call = call
        call.attach_stream_end(self._complete)
        self._feature = call.feature_name
        self._call_token = llmobs_call.set(call)

    def _finish(self, error: BaseException | None) -> None:
        try:
            super()._finish(error)
        finally:
            reset_variable(llmobs_call, self._call_token)
            self._call_token = None

    def _deferred(self, error: BaseException | None) -> bool:
        # A wrapped stream still being consumed ends the call when it ends.
        return self.call is not None and self.call.leave_block(error)

    def _complete(self, error: BaseException | None) -> None:
        try:
            super()._complete(error)
        finally:
            # The handle's stream-end callback is a method of this scope, so
            # the two form a reference cycle. Dropping the callback once the
            # call is complete lets reference counting free both at once.
            # Left in place, every call waited for the garbage collector,
            # which then ran twice as often as without llmobs.
            if self.call is not None:
                self.call.attach_stream_end(None)

    def _emit(
        self, span: Span, error: BaseException | None, duration_ms: float
    ) -> None:
        call = self.call
        assert call is not None
        call.finish(error, self._stage_event(error, duration_ms, call.trace_id))

    def _on_return(self, result: object) -> None:
        call = self.call
        assert call is not None
        # A returned stream wrapper records its own chunks.
        if result is not None and not call.has_usage and not call.has_stream:
            call.record(result)

    def __enter__(self) -> LLMCall:  # type: ignore[override]
        self._start()
        assert self.call is not None
        return self.call

    async def __aenter__(self) -> LLMCall:  # type: ignore[override]
        return self.__enter__()


def _is_failure(error: BaseException | None) -> bool:
    """Return whether an exception ending a stage is a failure.

    Cancellation (a client that went away, a stream closed early) is not.
    """
    return error is not None and not isinstance(
        error, asyncio.CancelledError | GeneratorExit
    )


def build_prompt(**attributes: str) -> StageScope:
    """Scope the stage that fills a prompt template.

    Args:
        **attributes: String span attributes, for example ``template="v2"``.
    """
    return StageScope("build_prompt", attributes)


def retrieve_context(**attributes: str) -> StageScope:
    """Scope the retrieval stage (vector search, database, tool calls).

    Args:
        **attributes: String span attributes.
    """
    return StageScope("retrieve_context", attributes)


def postprocess(**attributes: str) -> StageScope:
    """Scope the stage that checks or reshapes the model's answer.

    Args:
        **attributes: String span attributes.
    """
    return StageScope("postprocess", attributes)


def call_llm(
    *,
    model: str,
    provider: str | None = None,
    prompt_template_id: str | None = None,
    prompt_template: str | None = None,
    prompt: Any = None,
    streaming: bool = False,
    **extra: str,
) -> LLMCallScope:
    """Scope one LLM call and emit its event when the scope ends.

    Args:
        model: The requested model name.
        provider: Provider name, for example ``"openai"``.
        prompt_template_id: Id of the template the prompt was built from.
        prompt_template: The template's text; only its keyed hash is kept,
            so a template edited under the same id shows in the events.
        prompt: The prompt text or message list. Its keyed hash is kept;
            the text only as the privacy policy allows (by default never).
        streaming: Whether the request asks for a streamed response. The
            event's ``streaming`` is also set by the first recorded chunk, but
            a stream that fails before its first chunk needs this.
        **extra: String attributes added to the event's ``extra`` field.

    Returns:
        A scope yielding an ``LLMCall`` handle.

    Raises:
        TypeError: If ``model`` is not a non-empty string or an ``extra`` value
            is not a string.
    """
    return LLMCallScope(
        call_arguments=LLMCall.arguments(
            model=model,
            provider=provider,
            prompt_template_id=prompt_template_id,
            prompt_template=prompt_template,
            prompt=prompt,
            streaming=streaming,
            extra=extra,
        ),
    )


def observe_llm_call(
    feature_name: str,
    model: str,
    *,
    provider: str | None = None,
    prompt_template_id: str | None = None,
    prompt_template: str | None = None,
    prompt: Any = None,
    streaming: bool = False,
    **context: str,
) -> LLMCallScope:
    """Scope one LLM call for code that names its feature explicitly.

    Same as ``call_llm``, with the feature name given instead of taken from
    the request, and request attributes (``tenant_id``, ``tenant_tier``,
    ``session_id``, ``platform``, ``app_version``, ``region``) that override
    the request's for this event; other keyword arguments go to ``extra``.
    """
    return LLMCallScope(
        call_arguments=LLMCall.arguments(
            model=model,
            provider=provider,
            prompt_template_id=prompt_template_id,
            prompt_template=prompt_template,
            prompt=prompt,
            streaming=streaming,
            extra=context,
            feature_name=feature_name,
        ),
    )


def current_call() -> LLMCall | None:
    """Return the handle of the innermost ``call_llm`` scope, if any."""
    return llmobs_call.get()
