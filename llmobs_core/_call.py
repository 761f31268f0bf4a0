"""The handle of one LLM call, and the event it emits exactly once."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span

from llmobs_core import _ids, _open_calls
from llmobs_core._capture import NO_CAPTURE, ContentCapture, content_capture
from llmobs_core._ids import format_span_id, format_trace_id
from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core._semconv import attribute_text
from llmobs_core._status import classify_exception, error_type_name
from llmobs_core._streams import StreamEnd, wrap_stream
from llmobs_core.config import Config, get_config
from llmobs_core.context import (
    RequestState,
    current_feature,
    effective_attributes,
    llmobs_bound,
    llmobs_request,
)
from llmobs_core.emitters import CallStart, StageEvent
from llmobs_core.pricing import CACHE_HIT_SOURCE
from llmobs_core.privacy import CaptureMode, Hasher
from llmobs_core.providers import (
    Usage,
    extract_output_text,
    extract_usage,
    read_stream_item,
)
from llmobs_core.providers._usage import NO_USAGE
from llmobs_core.schema import SCHEMA_VERSION, CallStatus, LLMCallLog, trusted_event

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

# Finish reasons meaning the provider's own safety filter stopped the answer:
# OpenAI, Anthropic, Gemini and Bedrock spellings.
FILTERED_FINISH_REASONS = frozenset(
    {
        "content_filter",
        "refusal",
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "guardrail_intervened",
        "content_filtered",
    }
)

# The attributes of a call made outside any request; only read.
_NO_REQUEST = RequestState()

# Characters per token for estimates when a stream reports no usage; about
# right for English text with OpenAI's and Anthropic's tokenizers.
CHARS_PER_TOKEN = 4

# States of a call's wrapped stream, which decide what ends the call.
_UNWRAPPED = 0  # no stream: the block's exit ends the call
_OPEN = 1  # the stream's end will end the call
_ENDING = 2  # the stream's end ends the call, or has ended it
_STOPPED = 3  # stopped early inside the block: the block's exit ends the call


class LLMCall:
    """Handle of one LLM call, yielded by ``call_llm``.

    Record what the provider returned with ``record`` (or ``set_usage``, or
    ``wrap_stream`` for streams), and mark cache hits, retries, fallbacks
    and guardrail refusals. The handle's methods never raise: invalid input
    is ignored with a rate-limited WARNING, because observability must not
    break the request.
    """

    __slots__ = (
        "__weakref__",
        "_block_open",
        "_bound",
        "_cache_hit",
        "_capture",
        "_chunks",
        "_config",
        "_first_token_ns",
        "_generation",
        "_on_stream_end",
        "_output_chars",
        "_prompt_chars",
        "_span_id",
        "_started_ns",
        "_state",
        "_status",
        "_stream_end",
        "_stream_lock",
        "_stream_state",
        "_streaming",
        "_trace_id",
        "_unfinished",
        "_usage",
        "extra",
        "fallback_from",
        "feature_name",
        "model",
        "overrides",
        "prompt_hash",
        "prompt_template_hash",
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
        prompt_template: str | None,
        prompt: Any,
        extra: dict[str, str],
        streaming: bool = False,
        feature_name: str | None = None,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.span = span
        self.model = model
        self.provider = provider
        self.prompt_template_id = prompt_template_id
        self.extra = extra
        self.feature_name = feature_name or current_feature()
        self.overrides = overrides or {}
        self.retries = 0
        self.fallback_from: str | None = None
        self._state: RequestState | None = llmobs_request.get()
        self._bound = llmobs_bound.get()
        self._usage = NO_USAGE
        self._cache_hit = False
        self._streaming = streaming
        self._chunks = 0
        self._output_chars = 0
        self._first_token_ns: int | None = None
        self._status: CallStatus | None = None
        self._stream_end: StreamEnd | None = None
        self._stream_state = _UNWRAPPED
        self._stream_lock: threading.Lock | None = None
        self._block_open = True
        self._generation = _ids.fork_generation
        self._on_stream_end: Callable[[BaseException | None], None] | None = None
        # Popped by the first finish(); list.pop() is atomic, so a stream
        # ending on another thread and the scope's exit cannot both finish.
        self._unfinished = [True]
        # A span's ids never change, so they are formatted once.
        span_context = span.get_span_context()
        self._trace_id = format_trace_id(span_context.trace_id)
        self._span_id = format_span_id(span_context.span_id)
        # Kept from the start, so a configure() call during the call cannot
        # send its start and its end to different emitters.
        config = self._config = get_config()
        self.prompt_hash, self._prompt_chars = _describe_prompt(prompt, config.hasher)
        self.prompt_template_hash = _template_hash(
            prompt_template_id, prompt_template, config.hasher
        )
        self._capture = _content_capture(
            self._capture_mode(span_context.trace_id), config, prompt
        )
        request_id = self._state.request_id if self._state is not None else None
        config.fanout.emit_call_start(
            CallStart(self.feature_name, model, provider), request_id, self._trace_id
        )
        self._started_ns = time.perf_counter_ns()

    @staticmethod
    def arguments(
        *,
        model: str,
        provider: str | None,
        prompt_template_id: str | None,
        prompt_template: str | None,
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
        for name, value in (
            ("provider", provider),
            ("prompt_template_id", prompt_template_id),
            ("feature_name", feature_name),
        ):
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"call_llm() needs {name} as a str or None, got {name}={value!r}"
                )
        overrides: dict[str, str] = {}
        if extra:
            for key, value in extra.items():
                if not isinstance(value, str):
                    raise TypeError(
                        f"call_llm() extra attributes must be str, got {key}={value!r}"
                    )
            if feature_name is not None:
                overrides = {k: v for k, v in extra.items() if k in _OVERRIDABLE}
                extra = {k: v for k, v in extra.items() if k not in overrides}
        return {
            "model": model,
            "provider": provider,
            "prompt_template_id": prompt_template_id,
            "prompt_template": prompt_template,
            "prompt": prompt,
            "streaming": bool(streaming),
            "extra": extra,
            "feature_name": feature_name,
            "overrides": overrides,
        }

    @property
    def trace_id(self) -> str:
        """W3C trace id of the call's span, as 32 hex digits."""
        return self._trace_id

    @property
    def span_id(self) -> str:
        """W3C span id of the call's span, as 16 hex digits."""
        return self._span_id

    @property
    def has_usage(self) -> bool:
        """Whether token counts were recorded."""
        usage = self._usage
        return usage.input_tokens is not None or usage.output_tokens is not None

    @property
    def has_stream(self) -> bool:
        """Whether ``wrap_stream`` wrapped a stream for this call."""
        return self._stream_end is not None

    @property
    def stream_pending(self) -> bool:
        """Whether a wrapped stream ends the call, later or right now."""
        return self._stream_state == _OPEN or self._stream_state == _ENDING

    def leave_block(self, error: BaseException | None) -> bool:
        """Note that the ``call_llm`` block has exited; used by the call's scope.

        Returns:
            Whether a wrapped stream ends the call, so the block must not.
            An exception leaving the block always ends the call there.
        """
        lock = self._stream_lock
        if lock is None:
            self._block_open = False
            return False
        with lock:
            self._block_open = False
            return error is None and self.stream_pending

    def record(self, response: Any) -> None:
        """Read model, token usage and finish reason from a provider response.

        Accepts the response objects of the OpenAI, Anthropic, Gemini and
        Bedrock SDKs and their dict forms (see ``extract_usage``). Fields the
        response lacks keep their earlier values.
        """
        try:
            usage = extract_usage(response)
        except Exception:  # noqa: BLE001 - an adapter bug must not break the call
            _warning.warn(
                "record", "reading usage from a response failed", exc_info=True
            )
            return
        if usage is not None:
            self._usage = self._usage.merged(usage)
        if self._capture.active:
            text = extract_output_text(response)
            if text is not None:
                self._capture.set_output(text)

    def record_output(self, text: str) -> None:
        """Set the output text for content capture, for responses without one.

        Ignored unless the privacy policy captures content for this call.
        """
        if isinstance(text, str):
            self._capture.set_output(text)

    def record_chunk(self, chunk: Any) -> None:
        """Record one streamed chunk or event.

        Marks the call as streaming, counts the chunk, takes the first chunk
        with output as the time to first token, and reads usage from the
        chunks or events that carry it (OpenAI chat with ``include_usage``,
        Responses API events, Anthropic message events, Bedrock and Gemini).
        """
        self._streaming = True
        self._chunks += 1
        try:
            usage, text = read_stream_item(chunk)
        except Exception:  # noqa: BLE001 - an adapter bug must not break the call
            _warning.warn("chunk", "reading a stream chunk failed", exc_info=True)
            usage, text = None, None
        if usage is not None:
            self._usage = self._usage.merged(usage)
        if text is None or text:
            self._output_chars += len(text or "")
            self._capture.add_output(text or "")
            self.mark_first_token()

    def wrap_stream(self, stream: Any) -> Any:
        """Wrap a sync or async stream so its chunks are recorded as they pass.

        The chunks are passed through unchanged. The call then ends when the
        stream does, not when the ``call_llm`` block does: when it is
        exhausted, closed, fails, or is garbage collected unfinished. So the
        stream may be returned from the block and consumed later (a
        ``StreamingResponse``, Flask's ``stream_with_context``). A stream that
        stops early ends the call with status ``cancelled`` and the counts
        seen so far.

        One call observes one stream: a later ``wrap_stream`` on the same
        handle returns its stream unchanged, with a WARNING, so the call's
        end and counts stay those of the first stream. Use one ``call_llm``
        per stream, for example per retried request.

        Returns:
            An iterator (or async iterator) with the stream's other attributes
            and methods, including ``close()`` and use as a context manager.
            A value that is not iterable is returned unchanged, with a
            WARNING, and the call ends with its ``call_llm`` block.
        """
        if self.has_stream:
            _warning.warn(
                "wrap_stream_again",
                "wrap_stream() called again on one call_llm(); the stream is "
                "returned unwrapped and not recorded. Use one call_llm() per "
                "stream.",
            )
            return stream
        end = StreamEnd(self._end_stream)
        try:
            wrapper = wrap_stream(stream, self.record_chunk, end)
        except TypeError as error:
            _warning.warn("wrap_stream", "%s", error)
            return stream
        self._streaming = True
        self._stream_lock = threading.Lock()
        self._stream_state = _OPEN
        self._stream_end = end
        _open_calls.track(self)
        return wrapper

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
        cache_creation_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Set token counts directly; None leaves a count unchanged.

        ``input_tokens`` includes the cached and cache-write tokens, and
        ``output_tokens`` includes the reasoning tokens.
        """
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cached_input_tokens": cached_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
            "reasoning_tokens": reasoning_tokens,
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
        # int() turns int subclasses (an IntEnum) into the plain ints that
        # the event carries unvalidated.
        self._usage = self._usage.merged(
            Usage(
                input_tokens=_plain_int(input_tokens),
                output_tokens=_plain_int(output_tokens),
                cached_input_tokens=_plain_int(cached_input_tokens),
                cache_creation_input_tokens=_plain_int(cache_creation_input_tokens),
                reasoning_tokens=_plain_int(reasoning_tokens),
            )
        )

    def mark_cache_hit(self) -> None:
        """Mark the response as served from the application's own cache.

        A cache hit costs nothing: the event's ``cost_usd`` is 0 with
        ``cost_source`` ``cache-hit``.
        """
        self._cache_hit = True

    def add_retry(self, reason: str | None = None) -> None:
        """Count one retry made inside this call.

        Args:
            reason: Why the attempt was retried; added to the span as an event.
        """
        self.retries += 1
        self._add_span_event("llm.retry", reason)

    def fallback_to(self, model: str, reason: str | None = None) -> None:
        """Record that the call moved on to another model.

        The event's ``model`` becomes ``model`` and ``fallback_from`` keeps
        the model first requested, however many fallbacks follow.

        Args:
            model: The model now called.
            reason: Why, for example ``"rate_limited"``; added to the span.
        """
        if not isinstance(model, str) or not model:
            _warning.warn("fallback", "fallback_to() ignored model=%r", model)
            return
        if self.fallback_from is None:
            self.fallback_from = self.model
        self.model = model
        self._add_span_event("llm.fallback", reason, model=model)

    def mark_filtered(self, reason: str | None = None) -> None:
        """Record that a guardrail blocked the request or the answer.

        The call ends with status ``filtered_by_guardrail``, whether or not
        an exception follows.

        Args:
            reason: The guardrail's reason; added to the span as an event.
        """
        self._status = CallStatus.FILTERED_BY_GUARDRAIL
        self._add_span_event("llm.guardrail", reason)

    def mark_budget_exceeded(self, reason: str | None = None) -> None:
        """Record that a cost budget denied the call before the provider was called.

        The call ends with status ``budget_exceeded``, whether or not an
        exception follows.

        Args:
            reason: Why, for example the denying budget's name; added to the
                span as an event.
        """
        self._status = CallStatus.BUDGET_EXCEEDED
        self._add_span_event("llm.budget_exceeded", reason)

    def _capture_mode(self, trace_id: int) -> CaptureMode:
        if self._state is not None and self._state.debug:
            return CaptureMode.FULL
        if self._config.privacy.snippet_sampled(trace_id):
            return CaptureMode.SNIPPET
        return CaptureMode.NONE

    def _add_span_event(self, name: str, reason: str | None, **attributes: str) -> None:
        if not self.span.is_recording():
            return
        if reason:
            attributes["reason"] = reason
        for key, value in attributes.items():
            attributes[key] = attribute_text(value)
        self.span.add_event(name, attributes or None)

    def attach_stream_end(
        self, callback: Callable[[BaseException | None], None] | None
    ) -> None:
        """Set what runs when a wrapped stream ends; used by the call's scope.

        None removes it; the stream's end then finishes the call directly.
        """
        self._on_stream_end = callback

    def end_at_exit(self) -> None:
        """End the call as cancelled, whatever its stream and block are doing.

        For the interpreter's exit: a stream still open in a suspended
        generator or a daemon thread would never end the call otherwise.
        """
        if self._generation != _ids.fork_generation:
            return
        lock = self._stream_lock
        assert lock is not None  # set by wrap_stream
        with lock:
            self._stream_state = _ENDING
        if self._status is None:
            self._status = CallStatus.CANCELLED
        callback = self._on_stream_end
        try:
            if callback is not None:
                callback(None)
            else:
                self.finish(None)
        except Exception:  # noqa: BLE001 - the other calls must still end
            _warning.warn(
                "exit", "ending a streamed call at exit failed", exc_info=True
            )

    def _end_stream(self, error: BaseException | None, cancelled: bool) -> None:
        if self._generation != _ids.fork_generation:
            # A forked child's copy of a call its parent ends.
            return
        lock = self._stream_lock
        assert lock is not None  # set by wrap_stream
        with lock:
            # A stream that stops early inside the block was most likely
            # dropped by an exception leaving its loop. The block exits next,
            # with that exception, so the block's exit ends the call.
            stopped = cancelled and error is None and self._block_open
            self._stream_state = _STOPPED if stopped else _ENDING
        if stopped:
            return
        if cancelled and self._status is None:
            self._status = CallStatus.CANCELLED
        callback = self._on_stream_end
        if callback is not None:
            callback(error)
        else:
            self.finish(error)

    def finish(
        self, error: BaseException | None, stage: StageEvent | None = None
    ) -> LLMCallLog | None:
        """Build the call's event and send it to every emitter, once.

        Later calls send no call event and return None. The span is left
        open; its owner ends it after this returns.

        Args:
            error: The exception that ended the call, if any.
            stage: The ``call_llm`` stage event, sent in the same pass over
                the emitters as the call event, and sent on its own when no
                call event is.
        """
        fanout = self._config.fanout
        if self._generation != _ids.fork_generation:
            # A forked child's copy of a call its parent ends.
            return None
        try:
            self._unfinished.pop()
        except IndexError:
            if stage is not None:
                fanout.emit_stage(stage)
            return None
        if self._stream_end is not None:
            _open_calls.untrack(self)
        try:
            event = self._build_event(error)
        except Exception:  # noqa: BLE001 - must not break the user's request
            # NOTE: the in-flight gauge keeps this call, since no event ends it.
            _warning.warn("event", "building the LLM call event failed", exc_info=True)
            if stage is not None:
                fanout.emit_stage(stage)
            return None
        fanout.emit_call(event, self.span, stage)

        return event

    def _build_event(self, error: BaseException | None) -> LLMCallLog:
        ended_ns = time.perf_counter_ns()
        usage, estimated = self._final_usage()
        status = self._status
        if status is None:
            if error is not None:
                status = classify_exception(error)
            elif self._stream_state == _STOPPED:
                status = CallStatus.CANCELLED
            else:
                status = CallStatus.OK
        if status is CallStatus.OK and usage.finish_reason in FILTERED_FINISH_REASONS:
            status = CallStatus.FILTERED_BY_GUARDRAIL
        state = self._state or _NO_REQUEST
        attributes = effective_attributes(state, self._bound)
        if self.overrides:
            attributes.update(self.overrides)
        extra = attributes.pop("extra")
        if self.extra:
            extra.update(self.extra)
        cost, cost_source = self._cost(usage)
        ttft = None
        if self._first_token_ns is not None:
            ttft = (self._first_token_ns - self._started_ns) / 1e6
        capture_mode, input_snippet, output_snippet, input_content, output_content = (
            self._capture.fields()
        )

        # Every field, in the order LLMCallLog declares them.
        values = {
            "schema_version": SCHEMA_VERSION,
            "timestamp": datetime.now(UTC),
            "request_id": state.request_id,
            "trace_id": self._trace_id,
            "span_id": self._span_id,
            "feature_name": self.feature_name,
            "model": self.model,
            "response_model": usage.model,
            "provider": self.provider,
            "tenant_id": attributes["tenant_id"],
            "tenant_tier": attributes["tenant_tier"],
            "user_id_hash": attributes["user_id_hash"],
            "session_id": attributes["session_id"],
            "platform": attributes["platform"],
            "app_version": attributes["app_version"],
            "region": attributes["region"],
            "prompt_template_id": self.prompt_template_id,
            "prompt_hash": self.prompt_hash,
            "prompt_template_hash": self.prompt_template_hash,
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "output_tokens": usage.output_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_estimated": estimated,
            "latency_ms": (ended_ns - self._started_ns) / 1e6,
            "time_to_first_token_ms": ttft,
            "streaming": self._streaming,
            "chunk_count": self._chunks if self._streaming else None,
            "finish_reason": usage.finish_reason,
            "retries": self.retries,
            "fallback_from": self.fallback_from,
            "cache_hit": self._cache_hit,
            "status": status,
            "error_type": error_type_name(error) if error is not None else None,
            "cost_usd": cost,
            "cost_source": cost_source,
            "capture_mode": capture_mode,
            "input_snippet": input_snippet,
            "output_snippet": output_snippet,
            "input_content": input_content,
            "output_content": output_content,
            "extra": extra,
        }
        # The other values are checked where they enter (call_llm arguments,
        # the provider readers, set_usage) or made here. The plugins and
        # bind_context check the request's attributes too, but RequestState
        # is public, so anything but plain strings there goes through
        # validation, which rejects what the schema does not allow.
        if _plain_strings(attributes, extra):
            return trusted_event(values)
        del values["schema_version"]
        return LLMCallLog(**values)

    def _final_usage(self) -> tuple[Usage, bool]:
        """Return the usage, estimated from text if a stream reported none."""
        usage = self._usage
        if self.has_usage or not self._output_chars:
            return usage, False
        estimate = Usage(
            input_tokens=_estimate_tokens(self._prompt_chars),
            output_tokens=_estimate_tokens(self._output_chars),
        )
        return usage.merged(estimate), True

    def _cost(self, usage: Usage) -> tuple[float | None, str]:
        if self._cache_hit:
            return 0.0, CACHE_HIT_SOURCE
        try:
            return self._config.prices.price(
                usage, model=self.model, provider=self.provider
            )
        except Exception:  # noqa: BLE001 - pricing must not break the event
            _warning.warn(
                "pricing", "pricing model %r failed", self.model, exc_info=True
            )
            return None, "unpriced"


def _plain_strings(attributes: dict[str, Any], extra: dict[str, Any]) -> bool:
    """Return whether the attributes are str or None and ``extra`` maps str to str."""
    for value in attributes.values():
        if value is not None and type(value) is not str:
            return False
    for key, value in extra.items():
        if type(key) is not str or type(value) is not str:
            return False
    return True


def _plain_int(value: int | None) -> int | None:
    return None if value is None else int(value)


def _estimate_tokens(chars: int | None) -> int | None:
    if not chars:
        return None
    return math.ceil(chars / CHARS_PER_TOKEN)


def _describe_prompt(prompt: Any, hasher: Hasher) -> tuple[str | None, int | None]:
    """Return the prompt's keyed hash and the length of its text."""
    if prompt is None:
        return None, None
    try:
        return hasher.prompt_and_length(prompt)
    except Exception as error:  # noqa: BLE001 - a prompt must not break the call
        # A TypeError for a value JSON cannot encode, a RecursionError for a
        # message list that contains itself. Only types are logged, because
        # an exception's message could quote the prompt.
        _warning.warn(
            "prompt",
            "prompt_hash left empty: hashing a prompt of type %s raised %s; "
            "pass a str or a list of JSON-serializable messages",
            type(prompt).__name__,
            type(error).__name__,
        )
    return None, None


def _content_capture(mode: CaptureMode, config: Config, prompt: Any) -> ContentCapture:
    """Return the call's content capture; none if the prompt cannot be read."""
    try:
        return content_capture(mode, config.privacy, config.redactor, prompt)
    except Exception as error:  # noqa: BLE001 - a prompt must not break the call
        _warning.warn(
            "capture",
            "content capture off for this call: reading the prompt raised %s",
            type(error).__name__,
        )
        return NO_CAPTURE


def _template_hash(
    template_id: str | None, template: str | None, hasher: Hasher
) -> str | None:
    if template is None:
        return None
    if not isinstance(template, str):
        _warning.warn(
            "template",
            "prompt_template_hash left empty: prompt_template must be a str, got %s",
            type(template).__name__,
        )
        return None
    try:
        return hasher.template(template_id, template)
    except Exception as error:  # noqa: BLE001 - a template must not break the call
        _warning.warn(
            "template",
            "prompt_template_hash left empty: hashing the template raised %s",
            type(error).__name__,
        )
        return None
