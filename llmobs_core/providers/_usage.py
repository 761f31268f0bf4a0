"""Provider-neutral token usage, and field readers shared by the adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


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
        if self is NO_USAGE:
            return newer
        return Usage(
            input_tokens=_first(newer.input_tokens, self.input_tokens),
            output_tokens=_first(newer.output_tokens, self.output_tokens),
            cached_input_tokens=_first(
                newer.cached_input_tokens, self.cached_input_tokens
            ),
            cache_creation_input_tokens=_first(
                newer.cache_creation_input_tokens, self.cache_creation_input_tokens
            ),
            reasoning_tokens=_first(newer.reasoning_tokens, self.reasoning_tokens),
            model=_first(newer.model, self.model),
            finish_reason=_first(newer.finish_reason, self.finish_reason),
            cost_usd=_first(newer.cost_usd, self.cost_usd),
        )


NO_USAGE = Usage()
"""The usage of a call that has recorded nothing yet."""


def _first(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


# The kind of each source type read_field has seen (mapping, pydantic model
# or other object), cached because the isinstance check against the Mapping
# ABC costs more than the read itself. The types
# seen are few (dict and the SDKs' classes); past _MAX_CACHED_TYPES the rest
# are checked on every read. NOTE: a class registered with Mapping.register()
# after its first read here keeps being read by attribute.
_MAPPING = 0
_MODEL = 1
_OBJECT = 2
_source_kinds: dict[type, int] = {dict: _MAPPING}
_class_attributes: dict[tuple[type, str], bool] = {}
# Models whose class replaces pydantic's __getattr__ are read with getattr().
_PYDANTIC_GETATTR = getattr(BaseModel, "__getattr__", None)
_MAX_CACHED_TYPES = 512


def _source_kind(source: Any) -> int:
    source_type = type(source)
    if isinstance(source, Mapping):
        kind = _MAPPING
    elif (
        isinstance(source, BaseModel)
        and _PYDANTIC_GETATTR is not None
        and getattr(source_type, "__getattr__", None) is _PYDANTIC_GETATTR
    ):
        kind = _MODEL
    else:
        kind = _OBJECT
    if len(_source_kinds) < _MAX_CACHED_TYPES:
        _source_kinds[source_type] = kind
    return kind


def _undeclared_field(model: BaseModel, name: str) -> Any:
    """Return ``getattr(model, name, None)`` for a name not in the model's fields.

    Pydantic keeps undeclared fields (a proxy's ``cost``, say) in
    ``__pydantic_extra__``, and for a name found nowhere its ``__getattr__``
    raises an AttributeError, which costs about 30 times reading a field.
    This reads the extra fields directly, as that ``__getattr__`` does, for
    names that are not class attributes (properties, methods).
    """
    key = (type(model), name)
    on_class = _class_attributes.get(key)
    if on_class is None:
        on_class = hasattr(type(model), name) or name.startswith("_")
        if len(_class_attributes) < _MAX_CACHED_TYPES:
            _class_attributes[key] = on_class
    if on_class:
        return getattr(model, name, None)
    extra = model.__pydantic_extra__
    return extra.get(name) if extra else None


def read_field(source: Any, *names: str) -> Any:
    """Return the first present field among ``names`` of a mapping or object."""
    if source is None:
        return None
    kind = _source_kinds.get(type(source))
    if kind is None:
        kind = _source_kind(source)
    if kind == _MODEL:
        # The SDKs of OpenAI, Anthropic and Gemini return pydantic models,
        # which keep their declared fields in the instance dict.
        declared = source.__dict__
        for name in names:
            if name in declared:
                value = declared[name]
            else:
                value = _undeclared_field(source, name)
            if value is not None:
                return value
        return None
    for name in names:
        value = source.get(name) if kind == _MAPPING else getattr(source, name, None)
        if value is not None:
            return value
    return None


def read_count(source: Any, *names: str) -> int | None:
    """Return a non-negative integer field, or None when absent or invalid."""
    value = read_field(source, *names)
    if type(value) is int:
        return value if value >= 0 else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    # A plain int for an int subclass (an IntEnum), as the event's schema has.
    return int(value)


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
