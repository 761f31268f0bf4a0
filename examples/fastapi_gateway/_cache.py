"""Bounded in-memory cache of model answers, keyed by the normalized question."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Protocol

from examples.fastapi_gateway._prompts import ModelAnswer

_SPACE = re.compile(r"\s+")


class AnswerCache(Protocol):
    """Cache of model answers by question, as the gateways' features use it."""

    def get(self, question: str) -> ModelAnswer | None:
        """Return the cached answer to ``question``, or None."""

    def put(self, question: str, answer: ModelAnswer) -> None:
        """Store the answer to ``question``."""


class ResponseCache:
    """Least-recently-used cache of answers for one feature.

    Not thread-safe: the gateway uses it from one event loop only.

    Args:
        max_entries: Number of answers kept. When a new answer does not fit,
            the least recently used one is dropped.

    Raises:
        ValueError: If ``max_entries`` is less than 1.
    """

    def __init__(self, max_entries: int = 512) -> None:
        if max_entries < 1:
            raise ValueError(f"invalid max_entries {max_entries}, expected at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, ModelAnswer] = OrderedDict()

    def get(self, question: str) -> ModelAnswer | None:
        """Return the cached answer to ``question``, or None."""
        key = self.key(question)
        answer = self._entries.get(key)
        if answer is not None:
            self._entries.move_to_end(key)
        return answer

    def put(self, question: str, answer: ModelAnswer) -> None:
        """Store the answer to ``question``."""
        key = self.key(question)
        self._entries[key] = answer
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    @staticmethod
    def key(question: str) -> str:
        """Return the cache key: lower case, single spaces, no end punctuation."""
        return _SPACE.sub(" ", question.lower()).strip().rstrip("?!. ")
