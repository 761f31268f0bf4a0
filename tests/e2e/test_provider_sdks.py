"""Usage, streams, errors and cost with the official openai and anthropic SDKs
talking to the fake provider over loopback."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import anthropic
import genai_prices
import openai
import pytest

from examples.fake_provider.app import FakeProviderConfig, create_app
from llmobs_core import call_llm
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed

BUNDLED = f"bundled:{genai_prices.__version__}"
LONG_PROMPT = "Explain the protein content of common foods. " * 160
MESSAGES: list[Any] = [{"role": "user", "content": "How much protein is in an egg?"}]


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    config = FakeProviderConfig(latency_scale=0, slow_seconds=2.0)
    with run_uvicorn_in_thread(create_app(config)) as url:
        yield url


@pytest.fixture
def openai_client(provider_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{provider_url}/v1", api_key="test", max_retries=0, timeout=5
    ) as client:
        yield client


@pytest.fixture
def anthropic_client(provider_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=provider_url, api_key="test", max_retries=0, timeout=5
    ) as client:
        yield client


def test_openai_chat_cached_tokens_priced_once(
    observed: Observed, openai_client: openai.OpenAI
) -> None:
    messages: list[Any] = [{"role": "user", "content": LONG_PROMPT}]
    with call_llm(model="gpt-4o", provider="openai") as call:
        call.record(
            openai_client.chat.completions.create(model="gpt-4o", messages=messages)
        )

    event = observed.events[0]
    cached = event["cached_input_tokens"]
    assert cached > 0
    uncached = event["input_tokens"] - cached
    # gpt-4o: $2.50 per million input, $1.25 cached input, $10 output.
    expected = (uncached * 2.50 + cached * 1.25 + event["output_tokens"] * 10.0) / 1e6
    assert event["cost_usd"] == pytest.approx(expected)
    assert event["cost_source"] == BUNDLED
    assert event["finish_reason"] == "stop"


def test_openai_chat_stream_usage(
    observed: Observed, openai_client: openai.OpenAI
) -> None:
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        stream = call.wrap_stream(
            openai_client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    texts = [c.choices[0].delta.content for c in stream if c.choices]

    event = observed.events[0]
    assert texts
    assert event["status"] == "ok"
    assert event["streaming"] is True
    assert event["chunk_count"] == len(texts) + 1
    assert event["output_tokens"] > 0
    assert event["usage_estimated"] is False
    assert event["time_to_first_token_ms"] <= event["latency_ms"]


def test_openai_chat_stream_abandoned(
    observed: Observed, openai_client: openai.OpenAI
) -> None:
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        stream = call.wrap_stream(
            openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
        )
    iterator = iter(stream)
    next(iterator)
    next(iterator)
    del iterator, stream
    gc.collect()

    (event,) = observed.events
    assert event["status"] == "cancelled"
    assert event["chunk_count"] == 2


def test_openai_responses_usage(
    observed: Observed, openai_client: openai.OpenAI
) -> None:
    with call_llm(model="o4-mini", provider="openai") as call:
        call.record(openai_client.responses.create(model="o4-mini", input="Hi there"))

    event = observed.events[0]
    assert event["reasoning_tokens"] > 0
    assert event["output_tokens"] > event["reasoning_tokens"]
    assert event["response_model"] == "o4-mini"
    assert event["finish_reason"] == "completed"


def test_openai_responses_stream(
    observed: Observed, openai_client: openai.OpenAI
) -> None:
    with call_llm(model="gpt-4.1-mini", provider="openai") as call:
        stream = call.wrap_stream(
            openai_client.responses.create(
                model="gpt-4.1-mini", input="Tell me about eggs", stream=True
            )
        )
    kinds = [event.type for event in stream]

    event = observed.events[0]
    assert kinds[-1] == "response.completed"
    assert event["chunk_count"] == len(kinds)
    assert event["input_tokens"] > 0
    assert event["output_tokens"] > 0
    assert event["time_to_first_token_ms"] is not None


def test_anthropic_message_cache_priced_once(
    observed: Observed, anthropic_client: anthropic.Anthropic
) -> None:
    with call_llm(model="claude-sonnet-4-5", provider="anthropic") as call:
        message = anthropic_client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=200,
            messages=[{"role": "user", "content": LONG_PROMPT}],
        )
        call.record(message)

    event = observed.events[0]
    usage = message.usage
    reads = usage.cache_read_input_tokens or 0
    writes = usage.cache_creation_input_tokens or 0
    assert reads + writes > 0
    assert event["input_tokens"] == usage.input_tokens + reads + writes
    assert event["cached_input_tokens"] == reads
    assert event["cache_creation_input_tokens"] == writes
    # Claude Sonnet 4.5: $3 input, $0.30 cache read, $3.75 cache write,
    # $15 output, per million tokens.
    expected = (
        usage.input_tokens * 3.0
        + reads * 0.30
        + writes * 3.75
        + usage.output_tokens * 15.0
    ) / 1e6
    assert event["cost_usd"] == pytest.approx(expected)
    assert event["finish_reason"] == "end_turn"


def test_anthropic_stream_usage(
    observed: Observed, anthropic_client: anthropic.Anthropic
) -> None:
    with call_llm(model="claude-haiku-4-5", provider="anthropic") as call:
        stream = call.wrap_stream(
            anthropic_client.messages.create(
                model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES, stream=True
            )
        )
    kinds = [event.type for event in stream]

    event = observed.events[0]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert event["input_tokens"] > 0
    assert event["output_tokens"] > 1
    assert event["finish_reason"] == "end_turn"
    assert event["usage_estimated"] is False


def test_anthropic_async_stream_abandoned(
    observed: Observed, provider_url: str
) -> None:
    async def main() -> None:
        async with anthropic.AsyncAnthropic(
            base_url=provider_url, api_key="test", max_retries=0
        ) as client:
            with call_llm(model="claude-haiku-4-5", provider="anthropic") as call:
                stream = call.wrap_stream(
                    await client.messages.create(
                        model="claude-haiku-4-5",
                        max_tokens=100,
                        messages=MESSAGES,
                        stream=True,
                    )
                )
            await anext(stream)
            await anext(stream)
            await stream.close()

    asyncio.run(main())

    (event,) = observed.events
    assert event["status"] == "cancelled"
    assert event["chunk_count"] == 2
    assert event["input_tokens"] > 0


@pytest.mark.parametrize(
    ("behavior", "error", "status"),
    [
        pytest.param("rate_limit", anthropic.RateLimitError, "rate_limited", id="429"),
        pytest.param(
            "overloaded", anthropic.APIStatusError, "provider_error", id="529"
        ),
        pytest.param(
            "server_error", anthropic.InternalServerError, "provider_error", id="500"
        ),
        pytest.param(
            "bad_request", anthropic.BadRequestError, "provider_error", id="400"
        ),
    ],
)
def test_anthropic_error_status(
    observed: Observed,
    anthropic_client: anthropic.Anthropic,
    behavior: str,
    error: type[Exception],
    status: str,
) -> None:
    with pytest.raises(error), call_llm(model="claude-haiku-4-5", provider="anthropic"):
        anthropic_client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=MESSAGES,
            extra_headers={"x-fake-behavior": behavior},
        )

    assert observed.events[0]["status"] == status


def test_anthropic_timeout_status(observed: Observed, provider_url: str) -> None:
    with (
        anthropic.Anthropic(
            base_url=provider_url, api_key="test", max_retries=0, timeout=0.2
        ) as client,
        pytest.raises(anthropic.APITimeoutError),
        call_llm(model="claude-haiku-4-5", provider="anthropic"),
    ):
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=MESSAGES,
            extra_headers={"x-fake-behavior": "slow"},
        )

    assert observed.events[0]["status"] == "timeout"


def test_openai_connection_error_status(observed: Observed) -> None:
    # A closed loopback port: the connection is refused at once.
    with (
        openai.OpenAI(
            base_url="http://127.0.0.1:9/v1", api_key="test", max_retries=0, timeout=2
        ) as client,
        pytest.raises(openai.APIConnectionError),
        call_llm(model="gpt-4o-mini", provider="openai"),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    event = observed.events[0]
    assert event["status"] == "provider_error"
    assert event["error_type"] == "openai.APIConnectionError"


def test_unknown_model_unpriced(
    observed: Observed, openai_client: openai.OpenAI
) -> None:
    with call_llm(model="house-llm-1", provider="openai") as call:
        call.record(
            openai_client.chat.completions.create(
                model="house-llm-1", messages=MESSAGES
            )
        )

    event = observed.events[0]
    assert event["input_tokens"] > 0
    assert event["cost_usd"] is None
    assert event["cost_source"] == "unpriced"
