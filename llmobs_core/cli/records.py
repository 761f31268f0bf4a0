"""Read call and feedback events from JSON lines, skipping malformed ones.

A line is a call event unless its ``event`` field is ``"feedback"``. A call
event needs ``timestamp``, ``model``, ``latency_ms`` and ``status``. Every other
field may be missing, as in lines of schema versions 1.0 and 1.1, and is then
read as null. A line that is not a JSON object, is nested too deeply to
decode, lacks a required field, has a field of the wrong type or a number
above ``MAX_VALUES`` is skipped and counted, never fatal.

Lines are decoded by msgspec when it is installed (the ``fast`` extra). It
builds only the fields in ``EVENT_FIELDS``, skips the rest of the line and
checks the types of a call's fields in C. A line that msgspec rejects is
parsed again with the standard library's ``json`` and checked in Python, so
both paths accept the same lines and give the same reasons.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Annotated, Any, Final, Protocol, cast

try:
    import msgspec
except ImportError:  # the ``fast`` extra is not installed
    msgspec = None  # type: ignore[assignment]

# A call counts as an error for these statuses. Cache hits and all other
# statuses (guardrail filtering, cancellation, a denied budget) are not.
ERROR_STATUSES = frozenset({"timeout", "rate_limited", "provider_error", "error"})

GROUP_FIELDS = (
    "feature_name",
    "model",
    "tenant_tier",
    "region",
    "prompt_template_id",
    "variant",
)
"""Fields that ``--by`` accepts; ``variant`` is read from ``extra`` when it is
not a field of the event."""


class _Missing:
    """Type of ``MISSING``, the value of a field that the line does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

# The fields read from a line, with the value of a missing one. MISSING marks
# the fields whose absence differs from null: a required field, or a group
# field, which is then read from ``extra``.
EVENT_FIELDS: Final[dict[str, object]] = {
    "event": None,
    "timestamp": MISSING,
    "model": MISSING,
    "status": MISSING,
    "latency_ms": MISSING,
    "request_id": MISSING,
    "trace_id": None,
    "feature_name": MISSING,
    "provider": None,
    "tenant_tier": MISSING,
    "region": MISSING,
    "prompt_template_id": MISSING,
    "variant": MISSING,
    "time_to_first_token_ms": None,
    "cost_usd": None,
    "input_tokens": None,
    "output_tokens": None,
    "cache_hit": None,
    "extra": None,
    "name": MISSING,
    "value": MISSING,
}
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

# No single call takes 1e9 ms (11.6 days), costs a million dollars or uses
# 10**12 tokens. These bounds keep the sums, means and variances of any number
# of calls finite, so a few corrupt values cannot turn every figure into
# infinity. They are below 2**53, so an integer value is exact as a float.
MAX_MILLISECONDS: Final = 1_000_000_000
MAX_COST_USD: Final = 1_000_000
MAX_TOKENS: Final = 1_000_000_000_000
MAX_VALUES: Final[dict[str, int]] = {
    "latency_ms": MAX_MILLISECONDS,
    "time_to_first_token_ms": MAX_MILLISECONDS,
    "cost_usd": MAX_COST_USD,
    "input_tokens": MAX_TOKENS,
    "output_tokens": MAX_TOKENS,
}
"""Largest value of each numeric field of a call; a larger one skips the line."""
NESTED_TOO_DEEPLY = "JSON nested too deeply"
"""Reason of a line whose nesting exceeds the decoder's recursion limit."""


class MalformedLine(ValueError):
    """A line that is not a valid call or feedback event."""


class EventFields(Protocol):
    """The fields of ``EVENT_FIELDS`` read from one line, as attributes.

    A field that the line does not have is its ``EVENT_FIELDS`` value.
    """

    event: Any
    timestamp: Any
    model: Any
    status: Any
    latency_ms: Any
    request_id: Any
    trace_id: Any
    feature_name: Any
    provider: Any
    tenant_tier: Any
    region: Any
    prompt_template_id: Any
    variant: Any
    time_to_first_token_ms: Any
    cost_usd: Any
    input_tokens: Any
    output_tokens: Any
    cache_hit: Any
    extra: Any
    name: Any
    value: Any


class _DictFields:
    """``EventFields`` taken from a JSON object decoded by the ``json`` module."""

    __slots__ = tuple(EVENT_FIELDS)

    def __init__(self, data: dict[str, Any]) -> None:
        for name, default in EVENT_FIELDS.items():
            setattr(self, name, data.get(name, default))


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


@dataclasses.dataclass(slots=True)
class Call:
    """One validated call event.

    Attributes:
        timestamp: When the call ended, timezone-aware.
        fields: The fields the commands read. ``model``, ``status`` and
            ``latency_ms`` are set; the other fields are null or missing.
    """

    timestamp: datetime
    fields: EventFields

    @property
    def is_error(self) -> bool:
        """Whether the call's status is one of ``ERROR_STATUSES``."""
        return self.fields.status in ERROR_STATUSES

    def group_value(self, field: str) -> str | None:
        """Return the value of ``field``, read from ``extra`` when not a field.

        A value that is not a string (only ``variant`` and values from
        ``extra`` are not type-checked) is returned as compact JSON text, or
        None if it is nested too deeply to encode.

        Args:
            field: One of ``GROUP_FIELDS``.
        """
        value = getattr(self.fields, field)
        if value is MISSING:
            extra = self.fields.extra
            value = extra.get(field) if isinstance(extra, dict) else None
        if value is None or isinstance(value, str):
            return value
        return _json_text(value)


def _json_text(value: object) -> str | None:
    """Return ``value`` as compact JSON, None if it is nested too deeply."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        # The line was decoded with a little more stack to spare than this
        # call has, so a value nested just below that limit cannot be encoded.
        return None


def parse_line(line: bytes | str) -> Call | Feedback:
    """Parse one JSON line into a call or feedback event.

    Raises:
        MalformedLine: If the line is not a valid event; the message is the
            reason, short enough to count by.
    """
    return _parse(line)


def parse_line_with_json(line: bytes | str) -> Call | Feedback:
    """Parse one line like ``parse_line``, with the ``json`` module only.

    Raises:
        MalformedLine: If the line is not a valid event.
    """
    try:
        data = json.loads(line)
    except ValueError:
        raise MalformedLine("invalid JSON") from None
    except RecursionError:
        raise MalformedLine(NESTED_TOO_DEEPLY) from None
    if not isinstance(data, dict):
        raise MalformedLine("not a JSON object")
    fields = cast(EventFields, _DictFields(data))
    if fields.event == "feedback":
        return _parse_feedback(fields)
    return Call(_validate_call(fields), fields)


def _msgspec_parser() -> Callable[[bytes | str], Call | Feedback] | None:
    if msgspec is None:
        return None
    milliseconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_MILLISECONDS)]
    cost = Annotated[float, msgspec.Meta(ge=0, le=MAX_COST_USD)]
    count = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
    # The types that _validate_call checks. msgspec reads an integer into a
    # float field as a float.
    types: dict[str, Any] = dict.fromkeys(EVENT_FIELDS, Any)
    types.update(dict.fromkeys(_OPTIONAL_STRINGS, str | None))
    types.update(dict.fromkeys(_OPTIONAL_COUNTS, count | None))
    types.update(
        timestamp=str,
        model=str,
        status=str,
        latency_ms=milliseconds,
        time_to_first_token_ms=milliseconds | None,
        cost_usd=cost | None,
        cache_hit=bool | None,
        extra=dict[str, Any] | None,
    )
    struct = msgspec.defstruct(
        "EventStruct",
        [(name, types[name], default) for name, default in EVENT_FIELDS.items()],
    )
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(struct)
    decode_error = msgspec.DecodeError

    def parse(line: bytes | str) -> Call | Feedback:
        # msgspec does not check that the strings of skipped fields are valid
        # UTF-8, so a line that is not all ASCII is checked first. A line that
        # msgspec rejects may still be valid: json accepts NaN, lone
        # surrogates and UTF-16, a feedback line may have fields of any
        # type, and json gives the reason of a malformed line.
        if isinstance(line, bytes) and not line.isascii():
            try:
                line.decode()
            except UnicodeDecodeError:
                return parse_line_with_json(line)
        try:
            fields = decoder.decode(line)
        except (decode_error, RecursionError):
            # json then rejects a line nested too deeply, with that reason.
            return parse_line_with_json(line)
        if fields.event == "feedback":
            return _parse_feedback(fields)
        return Call(_check_required(fields), fields)

    return parse


_parse: Callable[[bytes | str], Call | Feedback] = (
    _msgspec_parser() or parse_line_with_json
)


def use_msgspec(enabled: bool) -> bool:
    """Parse lines with msgspec if ``enabled`` and installed, else with ``json``.

    Returns:
        Whether msgspec parses lines from now on.
    """
    global _parse
    fast = _msgspec_parser() if enabled else None
    _parse = fast or parse_line_with_json
    return fast is not None


def _check_required(fields: EventFields) -> datetime:
    # The fields that msgspec decoded have the types that _validate_call
    # checks, but a required field may be missing.
    timestamp = _parse_timestamp(fields.timestamp)
    if fields.model is MISSING:
        raise MalformedLine("missing field model")
    if fields.status is MISSING:
        raise MalformedLine("missing field status")
    if fields.latency_ms is MISSING:
        raise MalformedLine("missing field latency_ms")
    return timestamp


def _validate_call(fields: EventFields) -> datetime:
    timestamp = _parse_timestamp(fields.timestamp)
    if not isinstance(fields.model, str):
        raise MalformedLine(_missing_or_wrong(fields.model, "model", "a string"))
    # Any string is accepted, so statuses added by newer versions are counted.
    if not isinstance(fields.status, str):
        raise MalformedLine(_missing_or_wrong(fields.status, "status", "a string"))
    latency = fields.latency_ms
    if not _is_number(latency) or latency < 0:
        raise MalformedLine(_missing_or_wrong(latency, "latency_ms", "a number >= 0"))
    _check_maximum("latency_ms", latency)
    for name in _OPTIONAL_STRINGS:
        value = getattr(fields, name)
        if value is not MISSING and not isinstance(value, str | None):
            raise MalformedLine(f"{name} is not a string")
    for name in _OPTIONAL_NUMBERS:
        value = getattr(fields, name)
        if value is not None and (not _is_number(value) or value < 0):
            raise MalformedLine(f"{name} is not a number >= 0")
        _check_maximum(name, value)
    for name in _OPTIONAL_COUNTS:
        value = getattr(fields, name)
        if value is not None and (type(value) is not int or value < 0):
            raise MalformedLine(f"{name} is not an integer >= 0")
        _check_maximum(name, value)
    if not isinstance(fields.cache_hit, bool | None):
        raise MalformedLine("cache_hit is not a boolean")
    if not isinstance(fields.extra, dict | None):
        raise MalformedLine("extra is not an object")
    return timestamp


def _check_maximum(name: str, value: float | None) -> None:
    maximum = MAX_VALUES[name]
    if value is not None and value > maximum:
        raise MalformedLine(f"{name} is above {maximum:,}")


def _parse_feedback(fields: EventFields) -> Feedback:
    request_id, name, value = fields.request_id, fields.name, fields.value
    if not isinstance(request_id, str):
        raise MalformedLine(_missing_or_wrong(request_id, "request_id", "a string"))
    if not isinstance(name, str):
        raise MalformedLine(_missing_or_wrong(name, "name", "a string"))
    if not _is_number(value):
        raise MalformedLine(_missing_or_wrong(value, "value", "a finite number"))
    return Feedback(request_id, name, float(value))


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


def _missing_or_wrong(value: object, name: str, expected: str) -> str:
    if value is MISSING:
        return f"missing field {name}"
    return f"{name} is not {expected}"


def parse_lines(
    source: str, lines: Iterable[bytes], skipped: SkippedLines
) -> Iterator[Call | Feedback]:
    """Parse the lines of ``source``, counting malformed lines in ``skipped``.

    Blank lines are ignored and not counted.
    """
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():
            continue
        try:
            yield _parse(line)
        except MalformedLine as error:
            skipped.add(f"{source}:{number}", str(error))
