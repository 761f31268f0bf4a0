from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

import llmobs_core
from llmobs_core import (
    bind_context,
    build_prompt,
    call_llm,
    current_call,
    feature,
    observe_llm_call,
    postprocess,
    retrieve_context,
)
from tests.conftest import TEST_HASH_KEY, Observed, span_times

CHAT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 80,
        "total_tokens": 1280,
        "prompt_tokens_details": {"cached_tokens": 1024},
    },
}


class FakeRateLimitError(Exception):
    """Stands in for openai.RateLimitError: same class name and top module."""


FakeRateLimitError.__module__ = "openai._exceptions"
FakeRateLimitError.__name__ = "RateLimitError"
FakeRateLimitError.__qualname__ = "RateLimitError"


def test_stages_are_children_of_current_span(observed: Observed) -> None:
    tracer = observed.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        with build_prompt():
            pass
        with retrieve_context():
            pass
        with call_llm(model="gpt-4o-mini", provider="openai"):
            pass
        with postprocess():
            pass

    request_id = request.get_span_context().span_id
    for name in ("build_prompt", "retrieve_context", "call_llm", "postprocess"):
        span = observed.span(name)
        assert span.parent is not None
        assert span.parent.span_id == request_id


def test_stages_start_and_end_inside_parent_in_order(observed: Observed) -> None:
    tracer = observed.provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        for stage in (build_prompt, retrieve_context, postprocess):
            with stage():
                pass

    parent_start, parent_end = span_times(observed.span("request"))
    names = ("build_prompt", "retrieve_context", "postprocess")
    times = [span_times(observed.span(name)) for name in names]
    for start, end in times:
        assert parent_start <= start <= end <= parent_end
    for (_, earlier_end), (later_start, _) in itertools.pairwise(times):
        assert earlier_end <= later_start


def test_call_llm_span_kind_is_client(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini"):
        pass

    assert observed.span("call_llm").kind is SpanKind.CLIENT


def test_call_llm_emits_one_event_exactly(observed: Observed) -> None:
    with (
        bind_context(tenant_id="acme", tenant_tier="pro", region="eu-west-1"),
        feature("chat.assistant"),
        call_llm(
            model="gpt-4o-mini",
            provider="openai",
            prompt_template_id="assistant.v3",
            prompt="Hello there",
            channel="web",
        ) as call,
    ):
        call.record(CHAT_COMPLETION)

    (event,) = observed.events
    span = observed.span("call_llm")
    assert event["trace_id"] == f"{span.context.trace_id:032x}"
    assert event["span_id"] == f"{span.context.span_id:016x}"
    assert event["feature_name"] == "chat.assistant"
    assert event["model"] == "gpt-4o-mini"
    assert event["response_model"] == "gpt-4o-mini-2024-07-18"
    assert event["provider"] == "openai"
    assert event["tenant_id"] == "acme"
    assert event["tenant_tier"] == "pro"
    assert event["region"] == "eu-west-1"
    assert event["prompt_template_id"] == "assistant.v3"
    key = TEST_HASH_KEY.encode()
    expected_hash = hmac.new(key, b"Hello there", hashlib.sha256).hexdigest()
    assert event["prompt_hash"] == expected_hash
    assert event["input_tokens"] == 1200
    assert event["cached_input_tokens"] == 1024
    assert event["output_tokens"] == 80
    assert event["status"] == "ok"
    assert event["error_type"] is None
    assert event["streaming"] is False
    assert event["time_to_first_token_ms"] is None
    assert event["retries"] == 0
    assert event["cache_hit"] is False
    assert event["extra"] == {"channel": "web"}
    assert event["schema_version"] == llmobs_core.SCHEMA_VERSION


def test_call_llm_cost_prices_cached_tokens_once(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.record(CHAT_COMPLETION)

    # gpt-4o-mini: $0.15 per million input, $0.075 cached input, $0.60 output.
    expected = (176 * 0.15 + 1024 * 0.075 + 80 * 0.60) / 1_000_000
    assert observed.events[0]["cost_usd"] == pytest.approx(expected)


def test_call_llm_unknown_model_is_unpriced(observed: Observed) -> None:
    with call_llm(model="house-model-7", provider="openai") as call:
        call.set_usage(input_tokens=10, output_tokens=5)

    assert observed.events[0]["cost_usd"] is None


def test_call_llm_cache_hit_costs_nothing(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.mark_cache_hit()
        call.set_usage(input_tokens=100, output_tokens=10)

    event = observed.events[0]
    assert event["cache_hit"] is True
    assert event["cost_usd"] == 0.0


def test_call_llm_never_stores_prompt_text(observed: Observed) -> None:
    secret = "my card is 4111 1111 1111 1111"
    with call_llm(model="gpt-4o-mini", prompt=[{"role": "user", "content": secret}]):
        pass

    assert secret not in observed.capture.lines[0]
    for span in observed.spans:
        assert secret not in json.dumps(dict(span.attributes or {}))


def test_prompt_hash_ignores_message_key_order(observed: Observed) -> None:
    with call_llm(model="m", prompt=[{"role": "user", "content": "hi"}]):
        pass
    with call_llm(model="m", prompt=[{"content": "hi", "role": "user"}]):
        pass

    first, second = observed.events
    assert first["prompt_hash"] == second["prompt_hash"]


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        pytest.param(TimeoutError("slow"), "timeout", "TimeoutError", id="timeout"),
        pytest.param(
            FakeRateLimitError("429"),
            "rate_limited",
            "openai.RateLimitError",
            id="rate-limit",
        ),
        pytest.param(ValueError("bad"), "error", "ValueError", id="other"),
    ],
)
def test_call_llm_exception_sets_status(
    observed: Observed, error: Exception, status: str, error_type: str
) -> None:
    with pytest.raises(type(error)) as raised, call_llm(model="gpt-4o-mini"):
        raise error

    assert raised.value is error
    event = observed.events[0]
    assert event["status"] == status
    assert event["error_type"] == error_type
    span = observed.span("call_llm")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["llm.status"] == status
    assert [e.name for e in span.events] == ["exception"]


def test_call_llm_span_attributes(observed: Observed) -> None:
    with feature("chat"), call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.record(CHAT_COMPLETION)

    attributes = dict(observed.span("call_llm").attributes or {})
    assert attributes["llm.feature_name"] == "chat"
    assert attributes["llm.model"] == "gpt-4o-mini"
    assert attributes["llm.provider"] == "openai"
    assert attributes["llm.input_tokens"] == 1200
    assert attributes["llm.output_tokens"] == 80
    assert attributes["llm.cache_hit"] is False
    assert attributes["llm.status"] == "ok"
    assert attributes["llm.cost_usd"] == pytest.approx(observed.events[0]["cost_usd"])
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == 80


def test_call_llm_streaming_chunks_set_ttft(observed: Observed) -> None:
    role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
    text = {"index": 0, "delta": {"content": "Hi"}}
    chunks = [
        {"object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [role]},
        {"object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [text]},
        {
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "usage": {"prompt_tokens": 12, "completion_tokens": 2},
        },
    ]
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        for chunk in chunks:
            call.record_chunk(chunk)

    event = observed.events[0]
    assert event["streaming"] is True
    assert event["time_to_first_token_ms"] is not None
    assert event["time_to_first_token_ms"] <= event["latency_ms"]
    assert event["input_tokens"] == 12
    assert event["output_tokens"] == 2


def test_call_llm_retries_counted(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        call.add_retry("rate_limited")
        call.add_retry()

    assert observed.events[0]["retries"] == 2
    events = observed.span("call_llm").events
    assert [e.name for e in events] == ["llm.retry", "llm.retry"]


def test_call_llm_invalid_usage_is_ignored(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        call.set_usage(input_tokens=-1, output_tokens=3)

    assert observed.events[0]["input_tokens"] is None
    assert "input_tokens=-1" in caplog.text


def test_call_llm_rejects_missing_model() -> None:
    with pytest.raises(TypeError, match="model=''"):
        call_llm(model="")


def test_call_llm_decorator_records_return(observed: Observed) -> None:
    @call_llm(model="gpt-4o-mini", provider="openai")
    def ask() -> dict[str, Any]:
        assert current_call() is not None
        return CHAT_COMPLETION

    ask()
    ask()

    assert [e["input_tokens"] for e in observed.events] == [1200, 1200]
    assert current_call() is None


def test_call_llm_async_decorator(observed: Observed) -> None:
    @call_llm(model="gpt-4o-mini")
    async def ask() -> dict[str, Any]:
        await asyncio.sleep(0)
        return CHAT_COMPLETION

    asyncio.run(ask())

    assert observed.events[0]["output_tokens"] == 80


def test_stage_decorator_sync_and_async(observed: Observed) -> None:
    @build_prompt(template="v1")
    def build() -> str:
        return "prompt"

    @postprocess()
    async def finish() -> str:
        return "done"

    assert build() == "prompt"
    assert asyncio.run(finish()) == "done"
    assert observed.names() == ["build_prompt", "postprocess"]
    attributes = dict(observed.span("build_prompt").attributes or {})
    assert attributes["template"] == "v1"
    assert attributes["llm.stage"] == "build_prompt"


def test_stage_scope_single_use(observed: Observed) -> None:
    scope = build_prompt()
    with scope:
        pass

    with pytest.raises(RuntimeError, match="already entered"):
        scope.__enter__()


def test_stage_rejects_generator_function() -> None:
    def generate() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        build_prompt()(generate)


def test_stage_duration_histogram(observed: Observed) -> None:
    with feature("chat"):
        for _ in range(3):
            with retrieve_context():
                pass

    count = observed.sample(
        "llm_stage_duration_ms_count", feature_name="chat", stage="retrieve_context"
    )
    assert count == 3


def test_observe_llm_call_names_feature(observed: Observed) -> None:
    with (
        bind_context(tenant_id="acme"),
        observe_llm_call("batch.summarize", "gpt-4o-mini", tenant_id="other", job="7"),
    ):
        pass

    event = observed.events[0]
    assert event["feature_name"] == "batch.summarize"
    assert event["tenant_id"] == "other"
    assert event["extra"] == {"job": "7"}


def test_concurrent_stages_parent_to_caller(observed: Observed) -> None:
    tracer = observed.provider.get_tracer("test")

    async def one(index: int) -> None:
        async with retrieve_context(index=str(index)):
            await asyncio.sleep(0.01)

    async def main() -> None:
        with tracer.start_as_current_span("request"):
            await asyncio.gather(*(one(i) for i in range(5)))

    asyncio.run(main())

    request_id = observed.span("request").context.span_id
    stages = [s for s in observed.spans if s.name == "retrieve_context"]
    assert len(stages) == 5
    for span in stages:
        assert span.parent is not None
        assert span.parent.span_id == request_id


def test_no_sdk_still_gives_valid_ids(observed: Observed) -> None:
    llmobs_core.configure(
        tracer_provider=NoOpTracerProvider(),
        registry=observed.registry,
        hash_key=TEST_HASH_KEY,
    )
    with bind_context(tenant_id="t"), call_llm(model="gpt-4o-mini"):
        pass

    event = observed.events[0]
    assert len(event["trace_id"]) == 32
    assert event["trace_id"] != "0" * 32
    assert len(event["span_id"]) == 16
    assert (
        observed.sample(
            "llm_requests_total",
            feature_name="unknown",
            model="gpt-4o-mini",
            status="ok",
        )
        == 1
    )


def test_observe_llm_call_stage_metric_feature(observed: Observed) -> None:
    with feature("request.feature"), observe_llm_call("batch.summarize", "m"):
        pass

    count = observed.sample(
        "llm_stage_duration_ms_count", feature_name="batch.summarize", stage="call_llm"
    )
    assert count == 1


@pytest.mark.parametrize(
    ("error", "status"),
    [
        pytest.param(
            httpx.ReadTimeout("read timed out"), "timeout", id="httpx-read-timeout"
        ),
        pytest.param(
            httpx.RemoteProtocolError("peer closed"),
            "provider_error",
            id="httpx-protocol-error",
        ),
        pytest.param(asyncio.CancelledError(), "cancelled", id="cancelled"),
    ],
)
def test_call_llm_transport_error_status(
    observed: Observed, error: BaseException, status: str
) -> None:
    with pytest.raises(type(error)), call_llm(model="gpt-4o-mini"):
        raise error

    assert observed.events[0]["status"] == status


def test_call_llm_streaming_flag_without_chunks(observed: Observed) -> None:
    with pytest.raises(TimeoutError), call_llm(model="gpt-4o-mini", streaming=True):
        raise TimeoutError

    event = observed.events[0]
    assert event["streaming"] is True
    assert event["time_to_first_token_ms"] is None


def test_stream_closed_from_other_task_emits(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    async def stream() -> AsyncIterator[int]:
        with call_llm(model="gpt-4o-mini", streaming=True) as call:
            call.mark_first_token()
            yield 1
            yield 2

    async def main() -> None:
        chunks = stream()
        await asyncio.create_task(anext(chunks))
        await chunks.aclose()

    asyncio.run(main())

    (event,) = observed.events
    assert event["status"] == "cancelled"
    assert observed.span("call_llm").end_time is not None
    assert "Failed to detach context" not in caplog.text


def test_call_llm_fallback_records_first_model(observed: Observed) -> None:
    with call_llm(model="gpt-4o", provider="openai") as call:
        call.add_retry("rate_limited")
        call.fallback_to("gpt-4o-mini", reason="rate_limited")
        call.fallback_to("gpt-4.1-nano")

    event = observed.events[0]
    assert event["model"] == "gpt-4.1-nano"
    assert event["fallback_from"] == "gpt-4o"
    assert event["retries"] == 1
    names = [e.name for e in observed.span("call_llm").events]
    assert names == ["llm.retry", "llm.fallback", "llm.fallback"]
    labels = {"feature_name": "unknown", "model": "gpt-4.1-nano"}
    assert observed.sample("llm_requests_total", status="ok", **labels) == 1
    started = {"feature_name": "unknown", "model": "gpt-4o"}
    assert observed.sample("llm_calls_in_flight", **started) == 0


def test_call_llm_mark_filtered(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        call.mark_filtered("self_harm")

    event = observed.events[0]
    assert event["status"] == "filtered_by_guardrail"
    assert event["error_type"] is None
    (span_event,) = observed.span("call_llm").events
    assert span_event.name == "llm.guardrail"
    assert dict(span_event.attributes or {}) == {"reason": "self_harm"}


def test_exception_event_has_no_message(observed: Observed) -> None:
    secret = "my card is 4111111111111111 jane@example.com"
    with pytest.raises(ValueError, match="invalid literal"), build_prompt():
        int(secret)

    (event,) = observed.span("build_prompt").events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {
        "exception.type": "ValueError",
        "exception.escaped": True,
    }


def test_self_containing_prompt_left_unhashed(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    messages.append(messages)

    with call_llm(model="gpt-4o-mini", prompt=messages):
        pass

    [event] = observed.events
    assert event["prompt_hash"] is None
    assert "hashing a prompt of type list raised RecursionError" in caplog.text
    assert observed.names() == ["call_llm"]


def test_failed_call_start_ends_span_and_context(
    observed: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmobs_core import _call

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in llmobs")

    monkeypatch.setattr(_call.LLMCall, "__init__", broken)
    tracer = observed.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        with pytest.raises(RuntimeError), call_llm(model="gpt-4o-mini"):
            pass
        current = trace.get_current_span()

    assert current is request
    span = observed.span("call_llm")
    assert span.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in span.events] == ["RuntimeError"]


def test_span_text_without_lone_surrogates(observed: Observed) -> None:
    # OTLP exporters drop strings that UTF-8 cannot encode, so llmobs puts
    # U+FFFD where JSON's \ud800 escapes gave a lone surrogate.
    lone = json.loads('"acme \\ud800"')
    with (
        bind_context(tenant_id=lone),
        feature(lone),
        build_prompt(template=lone),
        call_llm(model=lone, provider="openai") as call,
    ):
        call.record({**CHAT_COMPLETION, "model": lone})
        call.add_retry(lone)

    cleaned = "acme \ufffd"
    stage = observed.span("build_prompt")
    span = observed.span("call_llm")
    assert stage.attributes["template"] == cleaned
    assert stage.attributes["llm.feature_name"] == cleaned
    assert span.attributes["llm.model"] == cleaned
    assert span.attributes["gen_ai.response.model"] == cleaned
    assert span.attributes["llmobs.tenant_id"] == cleaned
    assert span.events[0].attributes["reason"] == cleaned
    [event] = observed.events
    assert event["tenant_id"] == lone
