from __future__ import annotations

import logging
from typing import Any

import anthropic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from llmobs_core import providers
from llmobs_core._ratelimit import RateLimitedWarning
from llmobs_core.providers import (
    Usage,
    extract_output_text,
    extract_usage,
    read_stream_item,
)

OPENAI_CHAT: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2000,
        "completion_tokens": 300,
        "total_tokens": 2300,
        "prompt_tokens_details": {"cached_tokens": 1536},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}

OPENAI_RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "incomplete",
    "incomplete_details": {"reason": "max_output_tokens"},
    "model": "o4-mini-2025-04-16",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 900,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 128},
        "output_tokens": 500,
        "output_tokens_details": {"reasoning_tokens": 320},
        "total_tokens": 1400,
    },
}

ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 300,
        "output_tokens": 120,
    },
}

BEDROCK_CONVERSE: dict[str, Any] = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
    "stopReason": "end_turn",
    "usage": {
        "inputTokens": 40,
        "outputTokens": 60,
        "totalTokens": 100,
        "cacheReadInputTokens": 10,
        "cacheWriteInputTokens": 5,
    },
    "metrics": {"latencyMs": 420},
}

GEMINI_REST: dict[str, Any] = {
    "candidates": [
        {
            "content": {"parts": [{"text": "Hi"}], "role": "model"},
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 1200,
        "cachedContentTokenCount": 1024,
        "candidatesTokenCount": 80,
        "thoughtsTokenCount": 40,
        "totalTokenCount": 1320,
    },
    "modelVersion": "gemini-2.5-flash",
}

GEMINI_SDK_STYLE: dict[str, Any] = {
    "candidates": [
        {"content": {"parts": [{"text": "Hi"}]}, "finish_reason": "MAX_TOKENS"}
    ],
    "usage_metadata": {"prompt_token_count": 10, "candidates_token_count": 5},
    "model_version": "gemini-2.0-flash",
}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(
            OPENAI_CHAT,
            Usage(
                input_tokens=2000,
                output_tokens=300,
                cached_input_tokens=1536,
                reasoning_tokens=0,
                model="gpt-4o-2024-08-06",
                finish_reason="stop",
            ),
            id="openai-chat-dict",
        ),
        pytest.param(
            ChatCompletion.model_validate(OPENAI_CHAT),
            Usage(
                input_tokens=2000,
                output_tokens=300,
                cached_input_tokens=1536,
                reasoning_tokens=0,
                model="gpt-4o-2024-08-06",
                finish_reason="stop",
            ),
            id="openai-chat-sdk",
        ),
        pytest.param(
            Response.model_validate(OPENAI_RESPONSE),
            Usage(
                input_tokens=900,
                output_tokens=500,
                cached_input_tokens=0,
                cache_creation_input_tokens=128,
                reasoning_tokens=320,
                model="o4-mini-2025-04-16",
                finish_reason="max_output_tokens",
            ),
            id="openai-responses-sdk",
        ),
        pytest.param(
            ANTHROPIC_MESSAGE,
            Usage(
                input_tokens=2350,
                output_tokens=120,
                cached_input_tokens=2000,
                cache_creation_input_tokens=300,
                model="claude-sonnet-4-5-20250929",
                finish_reason="end_turn",
            ),
            id="anthropic-dict",
        ),
        pytest.param(
            BEDROCK_CONVERSE,
            Usage(
                input_tokens=55,
                output_tokens=60,
                cached_input_tokens=10,
                cache_creation_input_tokens=5,
                finish_reason="end_turn",
            ),
            id="bedrock-converse",
        ),
        pytest.param(
            GEMINI_REST,
            Usage(
                input_tokens=1200,
                output_tokens=120,
                cached_input_tokens=1024,
                reasoning_tokens=40,
                model="gemini-2.5-flash",
                finish_reason="STOP",
            ),
            id="gemini-rest",
        ),
        pytest.param(
            GEMINI_SDK_STYLE,
            Usage(
                input_tokens=10,
                output_tokens=5,
                model="gemini-2.0-flash",
                finish_reason="MAX_TOKENS",
            ),
            id="gemini-snake-case",
        ),
        pytest.param(
            {**OPENAI_CHAT, "usage": {**OPENAI_CHAT["usage"], "cost": 0.0042}},
            Usage(
                input_tokens=2000,
                output_tokens=300,
                cached_input_tokens=1536,
                reasoning_tokens=0,
                model="gpt-4o-2024-08-06",
                finish_reason="stop",
                cost_usd=0.0042,
            ),
            id="openrouter-reported-cost",
        ),
    ],
)
def test_extract_usage_by_shape(response: Any, expected: Usage) -> None:
    assert extract_usage(response) == expected


def test_anthropic_sdk_message() -> None:
    message = anthropic.types.Message.model_validate(ANTHROPIC_MESSAGE)

    usage = extract_usage(message)

    assert usage is not None
    assert usage.input_tokens == 2350
    assert usage.cached_input_tokens == 2000
    assert usage.cache_creation_input_tokens == 300


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(None, id="none"),
        pytest.param("text", id="string"),
        pytest.param({"foo": 1}, id="other-dict"),
        pytest.param(object(), id="object"),
        pytest.param(
            {"object": "chat.completion", "usage": {"prompt_tokens": -3}}, id="negative"
        ),
    ],
)
def test_extract_usage_unknown_shapes(response: Any) -> None:
    usage = extract_usage(response)

    assert usage is None or usage.input_tokens is None


def test_unknown_shape_warned_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        providers, "_warning", RateLimitedWarning(providers.logger, 300.0)
    )

    class Strange:
        secret = "the user's question"

    with caplog.at_level(logging.DEBUG, logger="llmobs_core.providers"):
        extract_usage(Strange())
        extract_usage(Strange())

    messages = [r for r in caplog.records if "Strange" in r.getMessage()]
    assert len(messages) == 1
    assert messages[0].levelno == logging.WARNING
    assert "prompt_tokens" in messages[0].getMessage()
    assert "input_tokens" in messages[0].getMessage()


def test_unknown_dict_warning_omits_content(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        providers, "_warning", RateLimitedWarning(providers.logger, 300.0)
    )

    with caplog.at_level(logging.WARNING, logger="llmobs_core.providers"):
        usage = extract_usage({"text": "my card is 4111 1111 1111 1111"})

    assert usage is None
    (record,) = caplog.records
    assert "dict" in record.getMessage()
    assert "4111" not in record.getMessage()


OPENAI_CHAT_DICT_WITHOUT_OBJECT = {
    "id": "chatcmpl-1",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Eggs."},
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 4},
    },
}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(
            OPENAI_CHAT_DICT_WITHOUT_OBJECT,
            Usage(
                input_tokens=12,
                output_tokens=3,
                cached_input_tokens=4,
                model="gpt-4o-mini-2024-07-18",
                finish_reason="stop",
            ),
            id="chat",
        ),
        pytest.param(
            {"usage": {"prompt_tokens": 7, "completion_tokens": 2}},
            Usage(input_tokens=7, output_tokens=2),
            id="chat-usage-only",
        ),
        pytest.param(
            {
                "model": "gpt-4.1",
                "status": "completed",
                "output": [],
                "usage": {
                    "input_tokens": 9,
                    "output_tokens": 5,
                    "output_tokens_details": {"reasoning_tokens": 1},
                },
            },
            Usage(
                input_tokens=9,
                output_tokens=5,
                reasoning_tokens=1,
                model="gpt-4.1",
                finish_reason="completed",
            ),
            id="responses",
        ),
    ],
)
def test_openai_dict_without_object(response: Any, expected: Usage) -> None:
    assert extract_usage(response) == expected


def test_anthropic_dict_not_read_as_responses() -> None:
    message = {
        "type": "message",
        "model": "claude-sonnet-4-5",
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 2,
            "cache_read_input_tokens": 30,
        },
    }

    usage = extract_usage(message)

    assert usage is not None
    assert usage.input_tokens == 40
    assert usage.cached_input_tokens == 30


def test_output_text_of_chat_dict_without_object() -> None:
    assert extract_output_text(OPENAI_CHAT_DICT_WITHOUT_OBJECT) == "Eggs."


def test_stream_chunk_dicts_without_object() -> None:
    chunk = {"model": "gpt-4o-mini", "choices": [{"delta": {"content": "Hi"}}]}
    last = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}

    first_usage, first_text = read_stream_item(chunk)
    last_usage, last_text = read_stream_item(last)

    assert first_usage == Usage(model="gpt-4o-mini")
    assert first_text == "Hi"
    assert last_usage == Usage(input_tokens=5, output_tokens=1)
    assert last_text == ""


def test_stream_openai_chat_chunks() -> None:
    first = ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        }
    )
    text = {
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}],
    }
    final = {
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3},
    }

    assert read_stream_item(first)[1] == ""
    assert read_stream_item(text)[1] == "Hello"
    usage, text_out = read_stream_item(final)
    assert text_out == ""
    assert usage is not None
    assert usage.output_tokens == 3


def test_stream_responses_events() -> None:
    delta = {"type": "response.output_text.delta", "delta": "abc", "sequence_number": 3}
    done = {"type": "response.completed", "response": OPENAI_RESPONSE}

    assert read_stream_item(delta) == (None, "abc")
    usage, text = read_stream_item(done)
    assert text == ""
    assert usage is not None
    assert usage.reasoning_tokens == 320


def test_stream_anthropic_events() -> None:
    start = {
        "type": "message_start",
        "message": {
            **ANTHROPIC_MESSAGE,
            "usage": {
                "input_tokens": 50,
                "cache_read_input_tokens": 2000,
                "output_tokens": 1,
            },
        },
    }
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hey"},
    }
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens"},
        "usage": {"output_tokens": 42},
    }

    start_usage, start_text = read_stream_item(start)
    assert start_text == ""
    assert start_usage is not None
    assert start_usage.input_tokens == 2050
    assert read_stream_item(delta) == (None, "Hey")
    assert read_stream_item({"type": "ping"}) == (None, "")
    end_usage, _ = read_stream_item(end)
    assert end_usage == Usage(output_tokens=42, finish_reason="max_tokens")


def test_stream_bedrock_events() -> None:
    delta = {"contentBlockDelta": {"delta": {"text": "four"}, "contentBlockIndex": 0}}
    metadata = {"metadata": {"usage": {"inputTokens": 7, "outputTokens": 9}}}

    assert read_stream_item(delta) == (None, "four")
    usage, _ = read_stream_item(metadata)
    assert usage is not None
    assert usage.input_tokens == 7
    assert usage.output_tokens == 9


def test_stream_unknown_item_counts_as_output() -> None:
    assert read_stream_item(b"raw bytes") == (None, None)
