from __future__ import annotations

import math
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from starlette.applications import Starlette

from examples.fake_provider.__main__ import main as cli_main
from examples.fake_provider.app import (
    FakeProviderConfig,
    ReceivedRequest,
    create_app,
)
from tests._servers import run_uvicorn_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-4o-mini"
PROMPT = "Say something about gateways."
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]
BEHAVIOR_HEADER = "x-fake-behavior"


@pytest.fixture(scope="module")
def provider_app() -> Starlette:
    return create_app(FakeProviderConfig(latency_scale=0.0, slow_seconds=5.0))


@pytest.fixture(scope="module")
def base_url(provider_app: Starlette) -> Iterator[str]:
    with run_uvicorn_in_thread(provider_app) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with _openai_client(base_url) as sdk_client:
        yield sdk_client


def _openai_client(base_url: str, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="test", max_retries=0, timeout=timeout
    )


def _expected_prompt_tokens(*contents: str) -> int:
    return 3 + sum(3 + math.ceil(len(content) / 4) for content in contents)


def _stream_chunks(client: openai.OpenAI, **options: Any) -> list[ChatCompletionChunk]:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, **options
    )
    with stream:
        return list(stream)


def _content_chunks(chunks: list[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    return [
        chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content
    ]


def test_chat_completion_parsed_by_sdk(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"


def test_chat_completion_usage_follows_estimate(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    usage = completion.usage
    content = completion.choices[0].message.content

    assert usage is not None
    assert content is not None
    assert usage.prompt_tokens == _expected_prompt_tokens(PROMPT)
    assert usage.completion_tokens == len(content.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0


@pytest.mark.parametrize(
    ("prompt_characters", "expected_cached_tokens"),
    [
        (4072, 0),  # 1024 prompt tokens
        (4076, 1024),  # 1025 prompt tokens
        (5000, 1152),  # 1256 prompt tokens
    ],
)
def test_chat_completion_cached_tokens_for_long_prompt(
    client: openai.OpenAI, prompt_characters: int, expected_cached_tokens: int
) -> None:
    prompt = "x" * prompt_characters
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}]
    )
    usage = completion.usage

    assert usage is not None
    assert usage.prompt_tokens == _expected_prompt_tokens(prompt)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == expected_cached_tokens


def test_chat_completion_reply_length_in_range(client: openai.OpenAI) -> None:
    for index in range(20):
        completion = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Question {index}"}]
        )
        usage = completion.usage

        assert usage is not None
        assert 20 <= usage.completion_tokens <= 120


def test_chat_completion_same_request_same_reply(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    second = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert first.usage == second.usage
    assert first.choices[0].message.content == second.choices[0].message.content


def test_chat_completion_other_prompt_other_reply(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    second = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Something else."}]
    )

    assert first.choices[0].message.content != second.choices[0].message.content


def test_chat_completion_seed_changes_reply(base_url: str) -> None:
    other_app = create_app(FakeProviderConfig(latency_scale=0.0, seed=7))
    with (
        run_uvicorn_in_thread(other_app) as other_url,
        _openai_client(base_url) as default_client,
        _openai_client(other_url) as seeded_client,
    ):
        first = default_client.chat.completions.create(model=MODEL, messages=MESSAGES)
        second = seeded_client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert first.choices[0].message.content != second.choices[0].message.content


def test_chat_completion_max_tokens_truncates(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_completion_tokens=5
    )
    usage = completion.usage
    content = completion.choices[0].message.content

    assert usage is not None
    assert usage.completion_tokens == 5
    assert content is not None
    assert len(content.split()) == 5
    assert completion.choices[0].finish_reason == "length"


def test_chat_completion_request_id_header(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES
    )

    assert raw.headers["x-request-id"].startswith("req_")


def test_stream_include_usage_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    chunks = _stream_chunks(client, stream_options={"include_usage": True})
    content_chunks = _content_chunks(chunks)
    usage = chunks[-1].usage

    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(content_chunks) >= 20
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert usage is not None
    assert usage.completion_tokens == len(content_chunks)
    assert usage.prompt_tokens == _expected_prompt_tokens(PROMPT)
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_stream_chunks_share_id_and_model(client: openai.OpenAI) -> None:
    chunks = _stream_chunks(client, stream_options={"include_usage": True})

    assert len({chunk.id for chunk in chunks}) == 1
    assert {chunk.model for chunk in chunks} == {MODEL}
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}


def test_stream_without_include_usage_has_no_usage(client: openai.OpenAI) -> None:
    chunks = _stream_chunks(client)

    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_content_matches_non_streaming(client: openai.OpenAI) -> None:
    chunks = _stream_chunks(client)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert streamed == completion.choices[0].message.content


@pytest.mark.asyncio
async def test_async_client_stream_usage(base_url: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key="test", max_retries=0
    ) as async_client:
        stream = await async_client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    usage = chunks[-1].usage

    assert usage is not None
    assert usage.completion_tokens == len(_content_chunks(chunks))


@pytest.mark.parametrize(
    ("behavior", "exception_class", "status_code"),
    [
        ("rate_limit", openai.RateLimitError, 429),
        ("server_error", openai.InternalServerError, 500),
        ("overloaded", openai.InternalServerError, 503),
        ("bad_request", openai.BadRequestError, 400),
    ],
)
def test_behavior_header_raises_status_error(
    client: openai.OpenAI,
    behavior: str,
    exception_class: type[openai.APIStatusError],
    status_code: int,
) -> None:
    with pytest.raises(exception_class) as caught:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={BEHAVIOR_HEADER: behavior}
        )

    assert caught.value.status_code == status_code


def test_behavior_rate_limit_error_body(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            extra_headers={BEHAVIOR_HEADER: "rate_limit"},
        )

    assert caught.value.type == "rate_limit_error"
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "1"


def test_behavior_model_suffix_selects_behavior(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=f"{MODEL}:rate_limit", messages=MESSAGES)


def test_behavior_header_overrides_model_suffix(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=f"{MODEL}:rate_limit",
        messages=MESSAGES,
        extra_headers={BEHAVIOR_HEADER: "normal"},
    )

    assert completion.model == f"{MODEL}:rate_limit"


def test_behavior_unknown_header_value_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={BEHAVIOR_HEADER: "unknown"}
        )

    assert BEHAVIOR_HEADER in caught.value.message


def test_behavior_slow_times_out_client(base_url: str) -> None:
    with (
        _openai_client(base_url, timeout=0.3) as slow_client,
        pytest.raises(openai.APITimeoutError),
    ):
        slow_client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={BEHAVIOR_HEADER: "slow"}
        )


def test_behavior_slow_answers_after_delay(base_url: str) -> None:
    slow_app = create_app(FakeProviderConfig(latency_scale=0.0, slow_seconds=0.3))
    with run_uvicorn_in_thread(slow_app) as slow_url, _openai_client(slow_url) as slow:
        started = time.monotonic()
        completion = slow.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={BEHAVIOR_HEADER: "slow"}
        )
        elapsed = time.monotonic() - started

    assert completion.choices[0].finish_reason == "stop"
    assert elapsed >= 0.3


def test_behavior_stream_error_breaks_stream(client: openai.OpenAI) -> None:
    chunks: list[ChatCompletionChunk] = []
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_headers={BEHAVIOR_HEADER: "stream_error"},
    )
    with stream, pytest.raises(openai.APIConnectionError):
        _collect(stream, chunks)

    assert len(_content_chunks(chunks)) == 2
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks)


def _collect(
    stream: Iterable[ChatCompletionChunk], chunks: list[ChatCompletionChunk]
) -> None:
    for chunk in stream:
        chunks.append(chunk)


def test_random_errors_follow_seed() -> None:
    config = FakeProviderConfig(latency_scale=0.0, seed=3, error_rate_429=0.2)
    statuses = [_post_statuses(create_app(config), count=50) for _ in range(2)]

    assert statuses[0] == statuses[1]
    assert 429 in statuses[0]
    assert 200 in statuses[0]


def test_random_errors_both_classes() -> None:
    config = FakeProviderConfig(
        latency_scale=0.0, seed=1, error_rate_429=0.3, error_rate_500=0.3
    )
    statuses = _post_statuses(create_app(config), count=50)

    assert 429 in statuses
    assert 500 in statuses
    assert 200 in statuses


def test_random_errors_skipped_for_explicit_normal() -> None:
    config = FakeProviderConfig(latency_scale=0.0, error_rate_429=1.0)
    app = create_app(config)

    assert _post_statuses(app, count=3) == [429, 429, 429]
    assert _post_statuses(app, count=3, behavior="normal") == [200, 200, 200]


def _post_statuses(
    app: Starlette, count: int, behavior: str | None = None
) -> list[int]:
    headers = {BEHAVIOR_HEADER: behavior} if behavior else {}
    body = {"model": MODEL, "messages": MESSAGES}
    with run_uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as http:
        return [
            http.post("/v1/chat/completions", json=body, headers=headers).status_code
            for _ in range(count)
        ]


def test_latency_scale_delays_response() -> None:
    config = FakeProviderConfig(
        latency_scale=0.5,
        ttft_min_seconds=0.4,
        ttft_max_seconds=0.4,
        token_min_seconds=0.0,
        token_max_seconds=0.0,
    )
    with run_uvicorn_in_thread(create_app(config)) as url, _openai_client(url) as sdk:
        started = time.monotonic()
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
        elapsed = time.monotonic() - started

    assert elapsed >= 0.2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"content": "x"}]}, "messages[0]"),
        ({"model": MODEL, "messages": MESSAGES, "stream": "yes"}, "stream"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_request_rejected(
    base_url: str, body: dict[str, Any], param: str
) -> None:
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/v1/chat/completions", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param


def test_invalid_json_rejected(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/v1/chat/completions", content=b"{not json")

    assert response.status_code == 400


def test_received_requests_recorded(
    base_url: str, provider_app: Starlette, client: openai.OpenAI
) -> None:
    with httpx.Client(base_url=base_url) as http:
        http.delete("/_fake/requests")
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"X-Test-Id": "abc"}
        )
        response = http.get("/_fake/requests")
    records = response.json()["requests"]

    assert response.status_code == 200
    assert len(records) == 1
    assert records[0]["path"] == "/v1/chat/completions"
    assert records[0]["method"] == "POST"
    assert records[0]["headers"]["x-test-id"] == "abc"
    assert records[0]["headers"]["authorization"] == "Bearer test"
    assert records[0]["body"]["messages"] == MESSAGES
    assert isinstance(provider_app.state.received[-1], ReceivedRequest)


def test_received_requests_cleared(base_url: str, client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with httpx.Client(base_url=base_url) as http:
        cleared = http.delete("/_fake/requests")
        response = http.get("/_fake/requests")

    assert cleared.status_code == 204
    assert response.json() == {"requests": []}


def test_received_requests_limited() -> None:
    config = FakeProviderConfig(latency_scale=0.0, max_recorded_requests=2)
    app = create_app(config)
    _post_statuses(app, count=3)

    assert len(app.state.received) == 2


def test_healthz_returns_ok(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        response = http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_scale", -1.0),
        ("error_rate_429", 1.5),
        ("error_rate_500", -0.1),
        ("ttft_max_seconds", 0.01),
        ("max_recorded_requests", -1),
    ],
)
def test_config_rejects_invalid_value(field: str, value: float) -> None:
    options: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        FakeProviderConfig(**options)


def test_config_rejects_error_rates_over_one() -> None:
    with pytest.raises(ValueError, match="error_rate_429 \\+ error_rate_500"):
        FakeProviderConfig(error_rate_429=0.6, error_rate_500=0.6)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "localhost", "::"])
def test_cli_rejects_non_loopback_host(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli_main(["--host", host, "--port", "0"])

    assert caught.value.code == 2
    assert "not a loopback IP address" in capsys.readouterr().err


def test_cli_prints_listening_line_and_serves() -> None:
    command = [
        sys.executable,
        "-m",
        "examples.fake_provider",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--latency-scale",
        "0",
    ]
    with subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = _read_line(process.stdout, timeout=15.0)
            url = line.removeprefix("LISTENING ").strip()
            health = httpx.get(f"{url}/healthz", timeout=5.0)
        finally:
            remaining_stdout, stderr = _terminate(process)

    assert re.fullmatch(r"LISTENING http://127\.0\.0\.1:\d+\n", line)
    assert health.status_code == 200
    assert remaining_stdout == "", stderr
    assert process.returncode in (0, -signal.SIGTERM), stderr


def _read_line(stream: IO[str], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no output line within {timeout} s")
    return stream.readline()


def _terminate(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    try:
        return process.communicate(timeout=15.0)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
