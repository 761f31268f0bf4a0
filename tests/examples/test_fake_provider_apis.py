"""End-to-end tests of the fake provider's Responses and Messages APIs.

The official openai and anthropic SDKs talk to the provider over loopback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message, MessageParam, RawMessageStreamEvent
from openai.types.responses import Response, ResponseStreamEvent
from starlette.applications import Starlette

from examples.fake_provider.app import FakeProviderConfig, create_app
from tests._servers import run_uvicorn_in_thread

OPENAI_MODEL = "gpt-4o-mini"
REASONING_MODEL = "o3-mini"
CLAUDE_MODEL = "claude-sonnet-4-5"
PROMPT = "Say something about gateways."
INSTRUCTIONS = "Answer in one paragraph."
CLAUDE_MESSAGES: list[MessageParam] = [{"role": "user", "content": PROMPT}]
BEHAVIOR_HEADER = "x-fake-behavior"
_EventT = TypeVar("_EventT")
RESPONSE_EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
MESSAGE_EVENT_ORDER = [
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]
# Older anthropic releases have no OverloadedError and raise APIStatusError on 529.
OVERLOADED_ERROR: type[anthropic.APIStatusError] = getattr(
    anthropic, "OverloadedError", anthropic.APIStatusError
)


@pytest.fixture(scope="module")
def provider_app() -> Starlette:
    return create_app(FakeProviderConfig(latency_scale=0.0))


@pytest.fixture(scope="module")
def base_url(provider_app: Starlette) -> Iterator[str]:
    with run_uvicorn_in_thread(provider_app) as url:
        yield url


@pytest.fixture
def openai_client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{base_url}/v1", api_key="test", max_retries=0, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
def claude(base_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=base_url, api_key="test", max_retries=0, timeout=10.0
    ) as client:
        yield client


def _expected_prompt_tokens(*contents: str) -> int:
    return 3 + sum(3 + math.ceil(len(content) / 4) for content in contents)


def _collapse_repeats(names: Sequence[str]) -> list[str]:
    collapsed: list[str] = []
    for name in names:
        if not collapsed or collapsed[-1] != name:
            collapsed.append(name)
    return collapsed


def _collect(stream: Iterable[_EventT], events: list[_EventT]) -> None:
    for event in stream:
        events.append(event)


def _sse_events(body: str) -> list[tuple[str, str]]:
    """Split a server-sent event body into (event line, data line) pairs."""
    events = []
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2, block
        events.append((lines[0], lines[1]))
    return events


# OpenAI Responses API


def _response_stream_events(
    client: openai.OpenAI, **options: Any
) -> list[ResponseStreamEvent]:
    stream = client.responses.create(
        model=OPENAI_MODEL, input=PROMPT, stream=True, **options
    )
    with stream:
        return list(stream)


def test_responses_create_parsed_by_sdk(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model=OPENAI_MODEL, input=PROMPT)
    message = response.output[0]

    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.incomplete_details is None
    assert response.model == OPENAI_MODEL
    assert response.created_at > 0
    assert len(response.output) == 1
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert message.status == "completed"
    assert message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert message.content[0].annotations == []
    assert response.output_text == message.content[0].text


def test_responses_usage_follows_estimate(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model=OPENAI_MODEL, input=PROMPT)
    usage = response.usage

    assert usage is not None
    assert usage.input_tokens == _expected_prompt_tokens(PROMPT)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens == len(response.output_text.split())
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_responses_instructions_count_as_system(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(
        model=OPENAI_MODEL, input=PROMPT, instructions=INSTRUCTIONS
    )
    usage = response.usage

    assert response.instructions == INSTRUCTIONS
    assert usage is not None
    assert usage.input_tokens == _expected_prompt_tokens(INSTRUCTIONS, PROMPT)


def test_responses_input_items_counted(openai_client: openai.OpenAI) -> None:
    second = "And about caches."
    response = openai_client.responses.create(
        model=OPENAI_MODEL,
        input=[
            {"role": "user", "content": PROMPT},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": second}],
            },
        ],
    )
    usage = response.usage

    assert usage is not None
    assert usage.input_tokens == _expected_prompt_tokens(PROMPT, second)


def test_responses_same_reply_as_chat(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model=OPENAI_MODEL, input=PROMPT)
    completion = openai_client.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": PROMPT}]
    )

    assert response.output_text == completion.choices[0].message.content


def test_responses_cached_tokens_for_long_prompt(
    openai_client: openai.OpenAI,
) -> None:
    prompt = "x" * 5000  # 1256 prompt tokens
    response = openai_client.responses.create(model=OPENAI_MODEL, input=prompt)
    usage = response.usage

    assert usage is not None
    assert usage.input_tokens == 1256
    assert usage.input_tokens_details.cached_tokens == 1152


def test_responses_max_output_tokens_incomplete(
    openai_client: openai.OpenAI,
) -> None:
    response = openai_client.responses.create(
        model=OPENAI_MODEL, input=PROMPT, max_output_tokens=5
    )
    usage = response.usage
    message = response.output[0]

    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 5
    assert message.type == "message"
    assert message.status == "incomplete"
    assert len(response.output_text.split()) == 5
    assert usage is not None
    assert usage.output_tokens == 5


def test_responses_reasoning_tokens_for_o_series(
    openai_client: openai.OpenAI,
) -> None:
    first = openai_client.responses.create(model=REASONING_MODEL, input=PROMPT)
    second = openai_client.responses.create(model=REASONING_MODEL, input=PROMPT)
    usage = first.usage

    assert usage is not None
    reasoning_tokens = usage.output_tokens_details.reasoning_tokens
    assert 64 <= reasoning_tokens <= 512
    assert reasoning_tokens % 64 == 0
    assert usage.output_tokens == len(first.output_text.split()) + reasoning_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert first.reasoning is not None
    assert first.reasoning.effort == "medium"
    assert second.usage == usage


@pytest.mark.parametrize("model", ["gpt-4o", "omni-custom", "gpt-4o:normal"])
def test_responses_no_reasoning_for_other_models(
    openai_client: openai.OpenAI, model: str
) -> None:
    response = openai_client.responses.create(model=model, input=PROMPT)

    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 0


def test_responses_reasoning_counts_against_limit(
    openai_client: openai.OpenAI,
) -> None:
    unlimited = openai_client.responses.create(model="o4-mini", input=PROMPT)
    assert unlimited.usage is not None
    reasoning_tokens = unlimited.usage.output_tokens_details.reasoning_tokens

    three_words = openai_client.responses.create(
        model="o4-mini", input=PROMPT, max_output_tokens=reasoning_tokens + 3
    )
    no_words = openai_client.responses.create(
        model="o4-mini", input=PROMPT, max_output_tokens=reasoning_tokens
    )

    assert three_words.status == "incomplete"
    assert len(three_words.output_text.split()) == 3
    assert three_words.usage is not None
    assert three_words.usage.output_tokens == reasoning_tokens + 3
    assert no_words.status == "incomplete"
    assert no_words.output == []
    assert no_words.usage is not None
    assert no_words.usage.output_tokens == reasoning_tokens
    assert no_words.usage.output_tokens_details.reasoning_tokens == reasoning_tokens


def test_responses_stream_event_order(openai_client: openai.OpenAI) -> None:
    events = _response_stream_events(openai_client)
    types = [event.type for event in events]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]

    assert _collapse_repeats(types) == RESPONSE_EVENT_ORDER
    assert len(deltas) >= 20
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_responses_stream_completed_carries_usage(
    openai_client: openai.OpenAI,
) -> None:
    events = _response_stream_events(openai_client)
    final = events[-1]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]

    assert final.type == "response.completed"
    assert final.response.status == "completed"
    assert final.response.output_text == "".join(deltas)
    assert final.response.usage is not None
    assert final.response.usage.output_tokens == len(deltas)
    assert final.response.usage.input_tokens == _expected_prompt_tokens(PROMPT)


def test_responses_stream_opening_events_no_usage(
    openai_client: openai.OpenAI,
) -> None:
    events = _response_stream_events(openai_client)
    created = events[0]
    in_progress = events[1]

    assert created.type == "response.created"
    assert created.response.status == "in_progress"
    assert created.response.output == []
    assert created.response.usage is None
    assert in_progress.type == "response.in_progress"
    assert in_progress.response.id == created.response.id
    assert events[-1].type == "response.completed"
    assert events[-1].response.id == created.response.id


def test_responses_stream_matches_non_streaming(
    openai_client: openai.OpenAI,
) -> None:
    events = _response_stream_events(openai_client)
    done = [e for e in events if e.type == "response.output_text.done"]
    response = openai_client.responses.create(model=OPENAI_MODEL, input=PROMPT)

    assert len(done) == 1
    assert done[0].text == response.output_text


def test_responses_stream_incomplete_event(openai_client: openai.OpenAI) -> None:
    events = _response_stream_events(openai_client, max_output_tokens=4)
    final = events[-1]

    assert final.type == "response.incomplete"
    assert final.response.status == "incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert final.response.usage is not None
    assert final.response.usage.output_tokens == 4


def test_responses_stream_helper_final_response(
    openai_client: openai.OpenAI,
) -> None:
    with openai_client.responses.stream(model=REASONING_MODEL, input=PROMPT) as stream:
        text = "".join(
            event.delta
            for event in stream
            if event.type == "response.output_text.delta"
        )
        final = stream.get_final_response()

    assert final.output_text == text
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens > 0


def test_responses_sse_lines_name_events(base_url: str) -> None:
    body = {"model": OPENAI_MODEL, "input": PROMPT, "stream": True}
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/v1/responses", json=body)
    events = _sse_events(response.text)

    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[0][0] == "event: response.created"
    assert events[-1][0] == "event: response.completed"
    for event_line, data_line in events:
        event_type = event_line.removeprefix("event: ")
        assert data_line.startswith(f'data: {{"type":"{event_type}"')


@pytest.mark.asyncio
async def test_async_responses_stream_usage(base_url: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key="test", max_retries=0
    ) as client:
        response = await client.responses.create(model=REASONING_MODEL, input=PROMPT)
        stream = await client.responses.create(
            model=REASONING_MODEL, input=PROMPT, stream=True
        )
        events = [event async for event in stream]
    final = events[-1]

    assert final.type == "response.completed"
    assert final.response.usage == response.usage


@pytest.mark.parametrize(
    ("behavior", "exception_class", "status_code"),
    [
        ("rate_limit", openai.RateLimitError, 429),
        ("server_error", openai.InternalServerError, 500),
        ("overloaded", openai.InternalServerError, 503),
        ("bad_request", openai.BadRequestError, 400),
    ],
)
def test_responses_behavior_raises_status_error(
    openai_client: openai.OpenAI,
    behavior: str,
    exception_class: type[openai.APIStatusError],
    status_code: int,
) -> None:
    with pytest.raises(exception_class) as caught:
        openai_client.responses.create(
            model=OPENAI_MODEL,
            input=PROMPT,
            extra_headers={BEHAVIOR_HEADER: behavior},
        )

    assert caught.value.status_code == status_code


def test_responses_stream_error_breaks_stream(openai_client: openai.OpenAI) -> None:
    events: list[ResponseStreamEvent] = []
    stream = openai_client.responses.create(
        model=OPENAI_MODEL,
        input=PROMPT,
        stream=True,
        extra_headers={BEHAVIOR_HEADER: "stream_error"},
    )
    with stream, pytest.raises(openai.APIConnectionError):
        _collect(stream, events)

    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == 2
    assert events[-1].type == "response.output_text.delta"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": PROMPT}, "model"),
        ({"model": OPENAI_MODEL}, "input"),
        ({"model": OPENAI_MODEL, "input": []}, "input"),
        ({"model": OPENAI_MODEL, "input": ["text"]}, "input[0]"),
        ({"model": OPENAI_MODEL, "input": PROMPT, "instructions": 5}, "instructions"),
        (
            {"model": OPENAI_MODEL, "input": PROMPT, "max_output_tokens": 0},
            "max_output_tokens",
        ),
        ({"model": OPENAI_MODEL, "input": PROMPT, "stream": "yes"}, "stream"),
    ],
)
def test_responses_invalid_request_rejected(
    base_url: str, body: dict[str, Any], param: str
) -> None:
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/v1/responses", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param


# Anthropic Messages API


def _raw_message_events(
    client: anthropic.Anthropic, **options: Any
) -> list[RawMessageStreamEvent]:
    stream = client.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=1024,
        messages=CLAUDE_MESSAGES,
        stream=True,
        **options,
    )
    with stream:
        return list(stream)


def test_messages_create_parsed_by_sdk(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=1024, messages=CLAUDE_MESSAGES
    )
    block = message.content[0]

    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == CLAUDE_MODEL
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert len(message.content) == 1
    assert block.type == "text"
    assert 20 <= len(block.text.split()) <= 120


def test_messages_usage_follows_estimate(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=1024, messages=CLAUDE_MESSAGES
    )
    block = message.content[0]

    assert block.type == "text"
    assert message.usage.input_tokens == _expected_prompt_tokens(PROMPT)
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens == len(block.text.split())


def test_messages_same_reply_as_chat(
    claude: anthropic.Anthropic, openai_client: openai.OpenAI
) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=1024, messages=CLAUDE_MESSAGES
    )
    completion = openai_client.chat.completions.create(
        model=CLAUDE_MODEL, messages=[{"role": "user", "content": PROMPT}]
    )
    block = message.content[0]

    assert block.type == "text"
    assert block.text == completion.choices[0].message.content


@pytest.mark.parametrize(
    "system",
    [INSTRUCTIONS, [{"type": "text", "text": INSTRUCTIONS}]],
    ids=["string", "blocks"],
)
def test_messages_system_counts_as_message(
    claude: anthropic.Anthropic, system: Any
) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=1024, system=system, messages=CLAUDE_MESSAGES
    )

    assert message.usage.input_tokens == _expected_prompt_tokens(INSTRUCTIONS, PROMPT)


def test_messages_max_tokens_truncates(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=5, messages=CLAUDE_MESSAGES
    )
    block = message.content[0]

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert block.type == "text"
    assert len(block.text.split()) == 5


@pytest.mark.parametrize(
    ("prompt_characters", "cache_read", "cache_creation", "uncached"),
    [
        (4072, 0, 0, 1024),  # 1024 prompt tokens
        (4076, 0, 1024, 1),  # 1025 prompt tokens
        (5000, 1024, 128, 104),  # 1256 prompt tokens
        (9000, 2048, 128, 80),  # 2256 prompt tokens
    ],
)
def test_messages_cache_split_for_long_prompt(
    claude: anthropic.Anthropic,
    prompt_characters: int,
    cache_read: int,
    cache_creation: int,
    uncached: int,
) -> None:
    prompt = "x" * prompt_characters
    message = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": prompt}],
    )
    usage = message.usage
    cache_read_tokens = usage.cache_read_input_tokens or 0
    cache_creation_tokens = usage.cache_creation_input_tokens or 0
    total = usage.input_tokens + cache_read_tokens + cache_creation_tokens

    assert usage.cache_read_input_tokens == cache_read
    assert usage.cache_creation_input_tokens == cache_creation
    assert usage.input_tokens == uncached
    assert total == _expected_prompt_tokens(prompt)


def test_messages_stream_event_order(claude: anthropic.Anthropic) -> None:
    events = _raw_message_events(claude)
    types = [event.type for event in events]
    expected = [name for name in MESSAGE_EVENT_ORDER if name != "ping"]

    # The SDK drops ping events, see test_messages_sse_lines_name_events.
    assert _collapse_repeats(types) == expected
    assert types.count("content_block_delta") >= 20


def test_messages_stream_usage(claude: anthropic.Anthropic) -> None:
    events = _raw_message_events(claude)
    start = events[0]
    delta = events[-2]
    texts = [
        event.delta.text
        for event in events
        if event.type == "content_block_delta" and event.delta.type == "text_delta"
    ]

    assert start.type == "message_start"
    assert start.message.usage.input_tokens == _expected_prompt_tokens(PROMPT)
    assert start.message.usage.output_tokens == 1
    assert start.message.content == []
    assert start.message.stop_reason is None
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == len(texts)
    assert delta.usage.input_tokens == _expected_prompt_tokens(PROMPT)


def test_messages_stream_max_tokens_stop(claude: anthropic.Anthropic) -> None:
    stream = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=3, messages=CLAUDE_MESSAGES, stream=True
    )
    with stream:
        events = list(stream)
    deltas = [event for event in events if event.type == "content_block_delta"]
    message_delta = events[-2]

    assert len(deltas) == 3
    assert message_delta.type == "message_delta"
    assert message_delta.delta.stop_reason == "max_tokens"
    assert message_delta.usage.output_tokens == 3


def test_messages_stream_helper_final_message(claude: anthropic.Anthropic) -> None:
    prompt = "x" * 5000
    messages: list[MessageParam] = [{"role": "user", "content": prompt}]
    with claude.messages.stream(
        model=CLAUDE_MODEL, max_tokens=1024, messages=messages
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    plain = claude.messages.create(
        model=CLAUDE_MODEL, max_tokens=1024, messages=messages
    )
    block = final.content[0]

    assert block.type == "text"
    assert block.text == text
    assert final.stop_reason == "end_turn"
    assert final.usage == plain.usage
    assert final.usage.cache_read_input_tokens == 1024


def test_messages_sse_lines_name_events(base_url: str) -> None:
    body = {
        "model": CLAUDE_MODEL,
        "max_tokens": 1024,
        "messages": CLAUDE_MESSAGES,
        "stream": True,
    }
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/v1/messages", json=body)
    events = _sse_events(response.text)
    names = [event_line.removeprefix("event: ") for event_line, _ in events]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    assert _collapse_repeats(names) == MESSAGE_EVENT_ORDER
    for name, (_, data_line) in zip(names, events, strict=True):
        assert data_line.startswith(f'data: {{"type":"{name}"')


@pytest.mark.asyncio
async def test_async_messages_stream_helper(base_url: str) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=base_url, api_key="test", max_retries=0
    ) as client:
        message = await client.messages.create(
            model=CLAUDE_MODEL, max_tokens=1024, messages=CLAUDE_MESSAGES
        )
        async with client.messages.stream(
            model=CLAUDE_MODEL, max_tokens=1024, messages=CLAUDE_MESSAGES
        ) as stream:
            final = await stream.get_final_message()

    final_block = final.content[0]
    block = message.content[0]

    assert final_block.type == "text"
    assert block.type == "text"
    assert final_block.text == block.text
    assert final.usage == message.usage


@pytest.mark.asyncio
async def test_async_messages_overloaded_error(base_url: str) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=base_url, api_key="test", max_retries=0
    ) as client:
        with pytest.raises(OVERLOADED_ERROR) as caught:
            await client.messages.create(
                model=f"{CLAUDE_MODEL}:overloaded",
                max_tokens=1024,
                messages=CLAUDE_MESSAGES,
            )

    assert caught.value.status_code == 529


@pytest.mark.parametrize(
    ("behavior", "exception_class", "status_code", "error_type"),
    [
        ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("server_error", anthropic.InternalServerError, 500, "api_error"),
        ("overloaded", OVERLOADED_ERROR, 529, "overloaded_error"),
        ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error"),
    ],
)
def test_messages_behavior_raises_status_error(
    claude: anthropic.Anthropic,
    behavior: str,
    exception_class: type[anthropic.APIStatusError],
    status_code: int,
    error_type: str,
) -> None:
    with pytest.raises(exception_class) as caught:
        claude.messages.create(
            model=CLAUDE_MODEL,
            max_tokens=1024,
            messages=CLAUDE_MESSAGES,
            extra_headers={BEHAVIOR_HEADER: behavior},
        )
    body = caught.value.body

    assert caught.value.status_code == status_code
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == caught.value.response.headers["request-id"]


def test_messages_rate_limit_retry_after(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(
            model=f"{CLAUDE_MODEL}:rate_limit",
            max_tokens=1024,
            messages=CLAUDE_MESSAGES,
        )

    assert caught.value.response.headers["retry-after"] == "1"


def test_messages_missing_max_tokens_rejected(claude: anthropic.Anthropic) -> None:
    # The SDK requires max_tokens, so the request goes through its generic post.
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.post(
            "/v1/messages",
            body={"model": CLAUDE_MODEL, "messages": CLAUDE_MESSAGES},
            cast_to=Message,
        )
    body = caught.value.body

    assert caught.value.status_code == 400
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "max_tokens: Field required"


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 10, "messages": CLAUDE_MESSAGES},
        {"model": CLAUDE_MODEL, "max_tokens": 10},
        {"model": CLAUDE_MODEL, "max_tokens": 0, "messages": CLAUDE_MESSAGES},
        {
            "model": CLAUDE_MODEL,
            "max_tokens": 10,
            "messages": CLAUDE_MESSAGES,
            "system": 5,
        },
    ],
    ids=["no-model", "no-messages", "zero-max-tokens", "numeric-system"],
)
def test_messages_invalid_request_rejected(base_url: str, body: dict[str, Any]) -> None:
    with httpx.Client(base_url=base_url) as http:
        response = http.post("/v1/messages", json=body)

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_messages_unknown_behavior_rejected(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=CLAUDE_MODEL,
            max_tokens=1024,
            messages=CLAUDE_MESSAGES,
            extra_headers={BEHAVIOR_HEADER: "unknown"},
        )

    assert BEHAVIOR_HEADER in str(caught.value)


def test_messages_stream_error_breaks_stream(claude: anthropic.Anthropic) -> None:
    events: list[RawMessageStreamEvent] = []
    stream = claude.messages.create(
        model=CLAUDE_MODEL,
        max_tokens=1024,
        messages=CLAUDE_MESSAGES,
        stream=True,
        extra_headers={BEHAVIOR_HEADER: "stream_error"},
    )
    with stream, pytest.raises(anthropic.APIConnectionError):
        _collect(stream, events)

    deltas = [event for event in events if event.type == "content_block_delta"]
    assert len(deltas) == 2
    assert events[-1].type == "content_block_delta"


def test_messages_random_errors_use_anthropic_body() -> None:
    app = create_app(FakeProviderConfig(latency_scale=0.0, error_rate_429=1.0))
    body = {"model": CLAUDE_MODEL, "max_tokens": 10, "messages": CLAUDE_MESSAGES}
    with run_uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as http:
        response = http.post("/v1/messages", json=body)

    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_messages_request_recorded(base_url: str, claude: anthropic.Anthropic) -> None:
    with httpx.Client(base_url=base_url) as http:
        http.delete("/_fake/requests")
        claude.messages.create(
            model=CLAUDE_MODEL, max_tokens=1024, messages=CLAUDE_MESSAGES
        )
        records = http.get("/_fake/requests").json()["requests"]
    headers = records[0]["headers"]
    # anthropic 2.17 sends the key as a bearer token, other releases as x-api-key.
    credentials = {headers.get("x-api-key"), headers.get("authorization")}

    assert len(records) == 1
    assert records[0]["path"] == "/v1/messages"
    assert records[0]["body"]["max_tokens"] == 1024
    assert "anthropic-version" in headers
    assert credentials & {"test", "Bearer test"}
