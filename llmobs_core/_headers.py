"""Checks on client-controlled headers, done before they reach a library.

OpenTelemetry's propagator logs a WARNING for each oversized ``traceparent``
and each malformed ``tracestate``; a client could fill the logs that way. So
such headers are dropped here first, counted, and logged at DEBUG.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["decode_header", "invalid_trace_headers"]

# The W3C Trace Context limits, as opentelemetry-api 1.45 applies them.
MAX_TRACEPARENT_LENGTH = 512
MAX_TRACESTATE_LENGTH = 8192
MAX_TRACESTATE_MEMBERS = 32
_SIMPLE_KEY = r"[a-z][_0-9a-z\-\*\/]{0,255}"
_TENANT_KEY = r"[a-z0-9][_0-9a-z\-\*\/]{0,240}@[a-z][_0-9a-z\-\*\/]{0,13}"
_KEY = f"{_SIMPLE_KEY}|{_TENANT_KEY}"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(rf"[ \t]*(?:{_KEY})=(?:{_VALUE})[ \t]*")


def invalid_trace_headers(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Return the trace-context headers that must not reach the propagator.

    A ``traceparent`` is dropped if it is oversized or does not follow the
    W3C format, which also covers a repeated header joined with ``,``. It
    takes a ``tracestate`` with it, since the W3C rules ignore ``tracestate``
    without a valid ``traceparent``. A ``tracestate`` is dropped if it is
    too long, has too many members, or any member is malformed; empty list
    members are allowed.
    """
    traceparent = headers.get("traceparent")
    tracestate = headers.get("tracestate")
    if traceparent is not None and not _valid_traceparent(traceparent):
        return ("traceparent",) if tracestate is None else _BOTH
    if tracestate is None or _valid_tracestate(tracestate):
        return ()
    return ("tracestate",)


_BOTH = ("traceparent", "tracestate")

# The format the OpenTelemetry propagator accepts: lower-case hex, a version
# other than ff, and nothing after the flags in version 00.
_TRACEPARENT = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?[ \t]*"
)
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


def _valid_traceparent(value: str) -> bool:
    if len(value) > MAX_TRACEPARENT_LENGTH:
        return False
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return False
    version, trace_id, span_id, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return False
    return trace_id != _ZERO_TRACE_ID and span_id != _ZERO_SPAN_ID


def _valid_tracestate(value: str) -> bool:
    if len(value) > MAX_TRACESTATE_LENGTH:
        return False
    members = [member for member in value.split(",") if member.strip()]
    if len(members) > MAX_TRACESTATE_MEMBERS:
        return False
    return all(_MEMBER.fullmatch(member) for member in members)


def decode_header(raw: bytes) -> str:
    """Decode a header value as UTF-8, or as Latin-1 if it is not UTF-8.

    HTTP headers are bytes; clients send non-ASCII tenant or user ids as
    UTF-8, so reading them as Latin-1 alone would garble them.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
