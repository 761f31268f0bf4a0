"""Deterministic reply text, token counts and latency for the fake provider."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from examples.fake_provider._config import FakeProviderConfig

_WORDS = (
    "the", "model", "request", "token", "latency", "gateway", "cache", "prompt",
    "reply", "stream", "metric", "trace", "span", "error", "retry", "budget",
    "price", "window", "context", "answer", "system", "user", "a", "an", "of",
    "to", "in", "for", "with", "on", "is", "was", "can", "will", "should",
    "quickly", "slowly", "clearly", "often", "rarely", "every", "each", "some",
    "many", "small", "large", "simple", "careful", "useful", "stable", "fast",
    "local", "remote", "observed", "measured", "counted", "logged", "sent",
)  # fmt: skip
_MIN_REPLY_WORDS = 20
_MAX_REPLY_WORDS = 120
_MIN_SENTENCE_WORDS = 5
_MAX_SENTENCE_WORDS = 14
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3
_CHARS_PER_TOKEN = 4
# OpenAI caches prompts of 1024 tokens or more and reports cache hits in steps
# of 128 tokens (OpenAI cookbook, "Prompt Caching 201", models before GPT-5.6).
_MIN_CACHED_TOKENS = 1024
_CACHE_STEP_TOKENS = 128


@dataclasses.dataclass(frozen=True)
class Usage:
    """Token counts of one completion, as reported in the ``usage`` object."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int

    def to_json(self) -> dict[str, Any]:
        """Build the ``usage`` object of the OpenAI Chat Completions API."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def request_digest(model: str, messages: Sequence[Any]) -> str:
    """Hash the model and messages of a request to a hex string.

    Other request fields, such as ``stream``, do not change the digest, so a
    streaming and a non-streaming request with the same messages get the same reply.
    """
    canonical = json.dumps(
        {"model": model, "messages": messages}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def generate_reply_pieces(digest: str, seed: int) -> list[str]:
    """Generate a reply of 20 to 120 words, split into stream pieces.

    Each piece is one word with its leading space and trailing punctuation, so
    ``"".join(pieces)`` is the reply text and ``len(pieces)`` its token count.
    """
    rng = random.Random(f"text:{seed}:{digest}")
    word_count = rng.randint(_MIN_REPLY_WORDS, _MAX_REPLY_WORDS)
    words: list[str] = []
    while len(words) < word_count:
        sentence_length = rng.randint(_MIN_SENTENCE_WORDS, _MAX_SENTENCE_WORDS)
        sentence_length = min(sentence_length, word_count - len(words))
        sentence = [rng.choice(_WORDS) for _ in range(sentence_length)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        words.extend(sentence)
    return [words[0]] + [f" {word}" for word in words[1:]]


def estimate_usage(messages: Sequence[Any], completion_tokens: int) -> Usage:
    """Estimate the token counts of a request and its reply.

    The prompt count is an estimate, not a tokenizer's output: 3 tokens per
    message plus one token per 4 characters of its text, and 3 tokens that prime
    the reply. ``cached_tokens`` is the largest multiple of 128 below the prompt
    count if that is at least 1024, else 0.
    """
    prompt_tokens = _TOKENS_PER_REPLY
    for message in messages:
        characters = len(message_text(message))
        prompt_tokens += _TOKENS_PER_MESSAGE + math.ceil(characters / _CHARS_PER_TOKEN)
    cached_tokens = (prompt_tokens - 1) // _CACHE_STEP_TOKENS * _CACHE_STEP_TOKENS
    if cached_tokens < _MIN_CACHED_TOKENS:
        cached_tokens = 0
    return Usage(prompt_tokens, completion_tokens, cached_tokens)


def message_text(message: Any) -> str:
    """Return the text of a chat message, joining the parts of list content.

    Non-text parts such as images count as no text.
    """
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        part["text"]
        for part in content
        if isinstance(part, Mapping) and isinstance(part.get("text"), str)
    ]
    return "".join(texts)


@dataclasses.dataclass(frozen=True)
class LatencyPlan:
    """Simulated delays in seconds for one completion, already scaled."""

    first_token_seconds: float
    token_seconds: tuple[float, ...]

    @property
    def total_seconds(self) -> float:
        """Time from the request to the last token."""
        return self.first_token_seconds + sum(self.token_seconds)


def plan_latency(
    digest: str, token_count: int, config: FakeProviderConfig
) -> LatencyPlan:
    """Draw the time to first token and the time of each later token.

    The draws depend only on the request digest and ``config.seed``, so the same
    request always gets the same delays.
    """
    rng = random.Random(f"latency:{config.seed}:{digest}")
    scale = config.latency_scale
    first = rng.uniform(config.ttft_min_seconds, config.ttft_max_seconds) * scale
    tokens = tuple(
        rng.uniform(config.token_min_seconds, config.token_max_seconds) * scale
        for _ in range(max(token_count - 1, 0))
    )
    return LatencyPlan(first, tokens)


@dataclasses.dataclass(frozen=True)
class Reply:
    """Generated reply of one request, before an API lays it out.

    Attributes:
        pieces: Reply text split into stream pieces, one token each.
        truncated: Whether the token limit of the request cut the reply.
        usage: Estimated token counts of the prompt and the reply.
        latency: Simulated delays of the reply pieces.
    """

    pieces: tuple[str, ...]
    truncated: bool
    usage: Usage
    latency: LatencyPlan

    @property
    def text(self) -> str:
        """Full reply text."""
        return "".join(self.pieces)


def plan_reply(
    digest: str,
    messages: Sequence[Any],
    limit: int | None,
    config: FakeProviderConfig,
) -> Reply:
    """Generate the reply to a request, cut to at most ``limit`` tokens.

    Args:
        digest: Request digest from ``request_digest``.
        messages: Chat messages whose text the prompt estimate counts.
        limit: Maximum number of reply tokens, or None for no limit. 0 gives an
            empty reply.
        config: Provider settings with the seed and the latency ranges.
    """
    pieces = generate_reply_pieces(digest, config.seed)
    truncated = limit is not None and limit < len(pieces)
    if limit is not None:
        pieces = pieces[:limit]
    return Reply(
        pieces=tuple(pieces),
        truncated=truncated,
        usage=estimate_usage(messages, len(pieces)),
        latency=plan_latency(digest, len(pieces), config),
    )
