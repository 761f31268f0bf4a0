"""The handle of one LLM call, and the event it emits exactly once."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span

from llmobs_core._ids import format_span_id, format_trace_id
from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core._status import classify_exception, error_type_name
from llmobs_core.config import get_config
from llmobs_core.context import RequestState, current_feature, llmobs_request
from llmobs_core.emitters import CallStart
from llmobs_core.pricing import price_usd
from llmobs_core.privacy import hash_prompt
from llmobs_core.providers import Usage, extract_usage
from llmobs_core.schema import CallStatus, LLMCallLog

__all__ = ["LLMCall"]

logger = logging.getLogger("llmobs_core.stages")
_warning = RateLimitedWarning(logger)

# Request attributes that observe_llm_call() may override for one event.
_OVERRIDABLE = (
    "tenant_id",
    "tenant_tier",
    "session_id",
    "platform",
    "app_version",
    "region",
)


class LLMCall:
    """Handle of one LLM call, yielded by ``call_llm``.

    Record what the provider returned with ``record`` (or ``set_usage``), and
    mark cache hits and retries. The handle's methods never raise: invalid
    input is ignored with a rate-limited WARNING, because observability must
    not break the request.
    """

    __slots__ = (
        "_cache_hit",
        "_fanout",
        "_finished",
        "_first_token_ns",
        "_lock",
        "_started_ns",
        "_state",
        "_status",
        "_streaming",
        "_usage",
        "extra",
        "feature_name",
        "model",
        "overrides",
        "prompt_hash",
        "prompt_template_id",
        "provider",
        "retries",
        "span",
    )

    def __init__(
        self,
        *,
        span: Span,
        model: str,
        provider: str | None,
        prompt_template_id: str | None,
        prompt_hash: str | None,
        extra: dict[str, str],
        streaming: bool = False,
        feature_name: str | None = None,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.span = span
        self.model = model
        self.provider = provider
        self.prompt_template_id = prompt_template_id
        self.prompt_hash = prompt_hash
        self.extra = extra
        self.feature_name = feature_name or current_feature()
        self.overrides = overrides or {}
        self.retries = 0
        self._state: RequestState | None = llmobs_request.get()
        self._usage = Usage()
        self._cache_hit = False
        self._streaming = streaming
        self._first_token_ns: int | None = None
        self._status: CallStatus | None = None
        self._finished = False
        self._lock = threading.Lock()
        # Kept from the start, so a configure() call during the call cannot
        # send its start and its end to different emitters.
        self._fanout = get_config().fanout
        request_id = self._state.request_id if self._state is not None else None
        self._fanout.emit_call_start(
            CallStart(self.feature_name, model, provider), request_id, self.trace_id
        )
        self._started_ns = time.perf_counter_ns()

    @staticmethod
    def arguments(
        *,
        model: str,
        provider: str | None,
        prompt_template_id: str | None,
        prompt: Any,
        streaming: bool,
        extra: dict[str, str],
        feature_name: str | None = None,
    ) -> dict[str, Any]:
        """Check ``call_llm`` arguments and return the handle's keyword arguments.

        Raises:
            TypeError: For a model that is not a non-empty string, or a
                non-string ``extra`` value.
        """
        if not isinstance(model, str) or not model:
            raise TypeError(
                f"call_llm() needs model as a non-empty str, got model={model!r}"
            )
        for key, value in extra.items():
            if not isinstance(value, str):
                raise TypeError(
                    f"call_llm() extra attributes must be str, got {key}={value!r}"
                )
        overrides = {k: v for k, v in extra.items() if k in _OVERRIDABLE}
        if feature_name is None:
            overrides = {}

        return {
            "model": model,
            "provider": provider,
            "prompt_template_id": prompt_template_id,
            "prompt_hash": _hash_or_none(prompt),
            "streaming": bool(streaming),
            "extra": {k: v for k, v in extra.items() if k not in overrides},
            "feature_name": feature_name,
            "overrides": overrides,
        }

    @property
    def trace_id(self) -> str:
        """W3C trace id of the call's span, as 32 hex digits."""
        return format_trace_id(self.span.get_span_context().trace_id)

    @property
    def span_id(self) -> str:
        """W3C span id of the call's span, as 16 hex digits."""
        return format_span_id(self.span.get_span_context().span_id)

    @property
    def has_usage(self) -> bool:
        """Whether token counts were recorded."""
        return (
            self._usage.input_tokens is not None
            or self._usage.output_tokens is not None
        )

    def record(self, response: Any) -> None:
        """Read model and token usage from a provider response.

        Accepts an OpenAI chat completion (or a stream chunk) object or its
        dict form. Fields the response lacks keep their earlier values.
        """
        try:
            usage = extract_usage(response)
        except Exception:  # noqa: BLE001 - an adapter bug must not break the call
            _warning.warn(
                "record", "reading usage from a response failed", exc_info=True
            )
            return
        if usage is not None:
            self._merge_usage(usage)

    def record_chunk(self, chunk: Any) -> None:
        """Record one streamed chunk.

        Marks the call as streaming, takes the first chunk's arrival as the
        time to first token, and reads usage from the chunk that carries it.
        """
        self.mark_first_token()
        self.record(chunk)

    def mark_first_token(self) -> None:
        """Mark the call as streaming and, the first time, note the instant."""
        self._streaming = True
        if self._first_token_ns is None:
            self._first_token_ns = time.perf_counter_ns()

    def set_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_input_tokens: int | None = None,
    ) -> None:
        """Set token counts directly; None leaves a count unchanged.

        ``input_tokens`` must include ``cached_input_tokens``.
        """
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_input_tokens": cached_input_tokens,
        }
        for name, value in counts.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                _warning.warn(
                    "set_usage",
                    "set_usage() ignored %s=%r: token counts must be non-negative ints",
                    name,
                    value,
                )
                return
        self._merge_usage(Usage(input_tokens, output_tokens, cached_input_tokens))

    def mark_cache_hit(self) -> None:
        """Mark the response as served from the application's own cache.

        A cache hit costs nothing: the event's ``cost_usd`` is 0.
        """
        self._cache_hit = True

    def add_retry(self, reason: str | None = None) -> None:
        """Count one retry made inside this call.

        Args:
            reason: Why the attempt was retried; added to the span as an event.
        """
        self.retries += 1
        if self.span.is_recording():
            attributes = {"llm.retry.reason": reason} if reason else None
            self.span.add_event("llm.retry", attributes)

    def _merge_usage(self, usage: Usage) -> None:
        current = self._usage
        self._usage = Usage(
            input_tokens=_first(usage.input_tokens, current.input_tokens),
            output_tokens=_first(usage.output_tokens, current.output_tokens),
            cached_input_tokens=_first(
                usage.cached_input_tokens, current.cached_input_tokens
            ),
            model=_first(usage.model, current.model),
        )

    def finish(self, error: BaseException | None) -> LLMCallLog | None:
        """Build the call's event and send it to every emitter, once.

        Later calls do nothing and return None. The span is left open; its
        owner ends it after this returns.
        """
        with self._lock:
            if self._finished:
                return None
            self._finished = True
        try:
            event = self._build_event(error)
        except Exception:  # noqa: BLE001 - must not break the user's request
            # NOTE: the in-flight gauge keeps this call, since no event ends it.
            _warning.warn("event", "building the LLM call event failed", exc_info=True)
            return None
        self._fanout.emit_call(event, self.span)

        return event

    def _build_event(self, error: BaseException | None) -> LLMCallLog:
        ended_ns = time.perf_counter_ns()
        status = self._status or (
            classify_exception(error) if error is not None else CallStatus.OK
        )
        state = self._state or RequestState()
        attributes = {name: getattr(state, name) for name in _OVERRIDABLE}
        attributes.update(self.overrides)
        usage = self._usage
        ttft = None
        if self._first_token_ns is not None:
            ttft = (self._first_token_ns - self._started_ns) / 1e6

        return LLMCallLog(
            timestamp=datetime.now(UTC),
            request_id=state.request_id,
            trace_id=self.trace_id,
            span_id=self.span_id,
            feature_name=self.feature_name,
            model=self.model,
            response_model=usage.model,
            provider=self.provider,
            user_id_hash=state.user_id_hash,
            prompt_template_id=self.prompt_template_id,
            prompt_hash=self.prompt_hash,
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
            latency_ms=(ended_ns - self._started_ns) / 1e6,
            time_to_first_token_ms=ttft,
            streaming=self._streaming,
            retries=self.retries,
            cache_hit=self._cache_hit,
            status=status,
            error_type=error_type_name(error) if error is not None else None,
            cost_usd=self._cost(usage),
            extra={**state.extra, **self.extra},
            **attributes,
        )

    def _cost(self, usage: Usage) -> float | None:
        if self._cache_hit:
            return 0.0
        try:
            return price_usd(
                usage, model=usage.model or self.model, provider=self.provider
            )
        except Exception:  # noqa: BLE001 - pricing must not break the event
            _warning.warn(
                "pricing", "pricing model %r failed", self.model, exc_info=True
            )
            return None


def _first(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def _hash_or_none(prompt: Any) -> str | None:
    if prompt is None:
        return None
    try:
        return hash_prompt(prompt)
    except TypeError as error:
        _warning.warn("prompt", "prompt_hash left empty: %s", error)
        return None
