"""Provider-neutral token usage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and model name reported by a provider for one response.

    ``input_tokens`` includes cached input tokens for every provider, and
    ``output_tokens`` includes reasoning tokens.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    model: str | None = None


def read_field(source: Any, name: str) -> Any:
    """Return ``source[name]`` for a mapping or ``source.name`` otherwise."""
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def read_count(source: Any, name: str) -> int | None:
    """Return a non-negative integer field, or None when absent or invalid."""
    value = read_field(source, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
