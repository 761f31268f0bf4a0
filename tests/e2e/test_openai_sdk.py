"""The official openai SDK against the fake provider, observed by call_llm."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest

from examples.fake_provider.app import FakeProviderConfig, create_app
from llmobs_core import call_llm
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed

MESSAGES = [{"role": "user", "content": "How much protein is in an egg?"}]


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    config = FakeProviderConfig(latency_scale=0, slow_seconds=2.0)
    with run_uvicorn_in_thread(create_app(config)) as url:
        yield f"{url}/v1"


def client_for(url: str, timeout: float = 5.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=url, api_key="test", max_retries=0, timeout=timeout
    )


async def ask(url: str, *, behavior: str | None = None, timeout: float = 5.0) -> None:
    headers = {"x-fake-behavior": behavior} if behavior else None
    async with client_for(url, timeout) as client:
        with call_llm(model="gpt-4o-mini", provider="openai", prompt=MESSAGES) as call:
            response = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                extra_headers=headers,
            )
            call.record(response)


def test_sdk_response_usage_recorded(observed: Observed, provider_url: str) -> None:
    asyncio.run(ask(provider_url))

    (event,) = observed.events
    assert event["status"] == "ok"
    assert event["input_tokens"] > 0
    assert event["output_tokens"] > 0
    assert event["response_model"] == "gpt-4o-mini"
    assert event["cost_usd"] > 0


def test_sdk_stream_usage_recorded(observed: Observed, provider_url: str) -> None:
    async def stream() -> int:
        chunks = 0
        async with client_for(provider_url) as client:
            with call_llm(model="gpt-4o-mini", provider="openai") as call:
                response = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in response:
                    chunks += 1
                    call.record_chunk(chunk)
        return chunks

    chunks = asyncio.run(stream())

    event = observed.events[0]
    assert chunks > 2
    assert event["streaming"] is True
    assert event["time_to_first_token_ms"] is not None
    assert event["output_tokens"] > 0


@pytest.mark.parametrize(
    ("behavior", "error", "status"),
    [
        pytest.param("rate_limit", openai.RateLimitError, "rate_limited", id="429"),
        pytest.param(
            "server_error", openai.InternalServerError, "provider_error", id="500"
        ),
        pytest.param("bad_request", openai.BadRequestError, "provider_error", id="400"),
    ],
)
def test_sdk_error_status(
    observed: Observed,
    provider_url: str,
    behavior: str,
    error: type[Exception],
    status: str,
) -> None:
    with pytest.raises(error):
        asyncio.run(ask(provider_url, behavior=behavior))

    event = observed.events[0]
    assert event["status"] == status
    assert event["error_type"] == f"openai.{error.__name__}"


def test_sdk_timeout_status(observed: Observed, provider_url: str) -> None:
    with pytest.raises(openai.APITimeoutError):
        asyncio.run(ask(provider_url, behavior="slow", timeout=0.2))

    event = observed.events[0]
    assert event["status"] == "timeout"
    assert event["error_type"] == "openai.APITimeoutError"
