"""Provider-neutral token usage, and field readers shared by the adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and model name reported by a provider for one response.

    The counts mean the same for every provider: ``input_tokens`` includes
    cached and cache-write input tokens, and ``output_tokens`` includes
    reasoning tokens. None means "not reported".
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    model: str | None = None
    finish_reason: str | None = None
    cost_usd: float | None = None
    """Cost the provider reported itself (OpenRouter, LiteLLM), if any."""

    def merged(self, newer: Usage) -> Usage:
        """Return this usage updated with the fields ``newer`` reports."""
        values = {
            field.name: _first(getattr(newer, field.name), getattr(self, field.name))
            for field in fields(self)
        }
        return Usage(**values)


def _first(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def read_field(source: Any, *names: str) -> Any:
    """Return the first present field among ``names`` of a mapping or object."""
    if source is None:
        return None
    for name in names:
        if isinstance(source, Mapping):
            value = source.get(name)
        else:
            value = getattr(source, name, None)
        if value is not None:
            return value
    return None


def read_count(source: Any, *names: str) -> int | None:
    """Return a non-negative integer field, or None when absent or invalid."""
    value = read_field(source, *names)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def read_str(source: Any, *names: str) -> str | None:
    """Return a string field, or None when absent or not a string."""
    value = read_field(source, *names)
    if isinstance(value, str):
        return value
    # SDK enums (Gemini's FinishReason) carry the wire value in .name/.value.
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else None


def text_of(value: Any) -> str:
    """Return a string value, or "" for anything else."""
    return value if isinstance(value, str) else ""


def add_counts(*counts: int | None) -> int | None:
    """Return the sum of the reported counts, or None if none was reported."""
    reported = [count for count in counts if count is not None]
    return sum(reported) if reported else None
