"""Read call and feedback events from JSON lines, skipping malformed ones.

A line is a call event unless its ``event`` field is ``"feedback"``. A call
event needs ``timestamp``, ``model``, ``latency_ms`` and ``status``. Every other
field may be missing, as in lines of schema versions 1.0 and 1.1, and is then
read as null. A line that is not a JSON object, lacks a required field or
has a field of the wrong type is skipped and counted, never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

# A call counts as an error for these statuses. Cache hits and all other
# statuses (guardrail filtering, cancellation, a denied budget) are not.
ERROR_STATUSES = frozenset({"timeout", "rate_limited", "provider_error", "error"})

_OPTIONAL_STRINGS = (
    "request_id",
    "trace_id",
    "feature_name",
    "provider",
    "tenant_tier",
    "region",
    "prompt_template_id",
)
_OPTIONAL_NUMBERS = ("time_to_first_token_ms", "cost_usd")
_OPTIONAL_COUNTS = ("input_tokens", "output_tokens")
MAX_EXAMPLES = 5


class MalformedLine(ValueError):
    """A line that is not a valid call or feedback event."""


@dataclasses.dataclass(slots=True)
class SkippedLines:
    """Count of malformed lines, by reason, with the first few locations.

    Attributes:
        count: Lines skipped.
        reasons: Skipped lines per reason.
        examples: ``"FILE:LINE: reason"`` for the first ``MAX_EXAMPLES`` lines.
    """

    count: int = 0
    reasons: Counter[str] = dataclasses.field(default_factory=Counter)
    examples: list[str] = dataclasses.field(default_factory=list)

    def add(self, location: str, reason: str) -> None:
        """Count one skipped line."""
        self.count += 1
        self.reasons[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{location}: {reason}")


@dataclasses.dataclass(frozen=True, slots=True)
class Feedback:
    """One feedback event: a named score for the response to one request."""

    request_id: str
    name: str
    value: float


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One validated call event.

    Attributes:
        timestamp: When the call ended, timezone-aware.
        fields: The event's JSON object, for the fields not parsed here.
    """

    timestamp: datetime
    fields: dict[str, Any]

    @property
    def is_error(self) -> bool:
        """Whether the call's status is one of ``ERROR_STATUSES``."""
        return self.fields["status"] in ERROR_STATUSES

    def group_value(self, field: str) -> str | None:
        """Return the value of ``field``, read from ``extra`` when not a field."""
        value = self.fields.get(field)
        if value is None and field not in self.fields:
            extra = self.fields.get("extra")
            value = extra.get(field) if isinstance(extra, dict) else None
        return None if value is None else str(value)


def parse_line(line: bytes | str) -> Call | Feedback:
    """Parse one JSON line into a call or feedback event.

    Raises:
        MalformedLine: If the line is not a valid event; the message is the
            reason, short enough to count by.
    """
    try:
        data = json.loads(line)
    except ValueError:
        raise MalformedLine("invalid JSON") from None
    if not isinstance(data, dict):
        raise MalformedLine("not a JSON object")
    if data.get("event") == "feedback":
        return _parse_feedback(data)
    return _parse_call(data)


def _parse_call(data: dict[str, Any]) -> Call:
    timestamp = _parse_timestamp(data.get("timestamp"))
    if not isinstance(data.get("model"), str):
        raise MalformedLine(_missing_or_wrong(data, "model", "a string"))
    # Any string is accepted, so statuses added by newer versions are counted.
    if not isinstance(data.get("status"), str):
        raise MalformedLine(_missing_or_wrong(data, "status", "a string"))
    if not _is_number(data.get("latency_ms")) or data["latency_ms"] < 0:
        raise MalformedLine(_missing_or_wrong(data, "latency_ms", "a number >= 0"))
    for name in _OPTIONAL_STRINGS:
        if not isinstance(data.get(name), str | None):
            raise MalformedLine(f"{name} is not a string")
    for name in _OPTIONAL_NUMBERS:
        value = data.get(name)
        if value is not None and (not _is_number(value) or value < 0):
            raise MalformedLine(f"{name} is not a number >= 0")
    for name in _OPTIONAL_COUNTS:
        value = data.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise MalformedLine(f"{name} is not an integer >= 0")
    if not isinstance(data.get("cache_hit"), bool | None):
        raise MalformedLine("cache_hit is not a boolean")
    if not isinstance(data.get("extra"), dict | None):
        raise MalformedLine("extra is not an object")
    return Call(timestamp, data)


def _parse_feedback(data: dict[str, Any]) -> Feedback:
    request_id, name, value = (
        data.get("request_id"),
        data.get("name"),
        data.get("value"),
    )
    if not isinstance(request_id, str):
        raise MalformedLine(_missing_or_wrong(data, "request_id", "a string"))
    if not isinstance(name, str):
        raise MalformedLine(_missing_or_wrong(data, "name", "a string"))
    if not _is_number(value):
        raise MalformedLine(_missing_or_wrong(data, "value", "a finite number"))
    return Feedback(request_id, name, float(value))  # type: ignore[arg-type]


def _parse_timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise MalformedLine("timestamp is missing or not a string")
    try:
        timestamp = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedLine("timestamp is not RFC 3339") from None
    if timestamp.tzinfo is None:
        raise MalformedLine("timestamp has no UTC offset")
    return timestamp


def _is_number(value: object) -> bool:
    # json.loads accepts NaN, Infinity and integers too large for a float,
    # none of which the aggregates can use.
    if type(value) is int:
        return abs(value) <= _MAX_FLOAT_INT
    return type(value) is float and math.isfinite(value)


_MAX_FLOAT_INT = 2**1023


def _missing_or_wrong(data: dict[str, Any], name: str, expected: str) -> str:
    if name not in data:
        return f"missing field {name}"
    return f"{name} is not {expected}"


def parse_lines(
    source: str, lines: Iterable[bytes], skipped: SkippedLines
) -> Iterator[Call | Feedback]:
    """Parse the lines of ``source``, counting malformed lines in ``skipped``.

    Blank lines are ignored and not counted.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_line(line)
        except MalformedLine as error:
            skipped.add(f"{source}:{number}", str(error))
