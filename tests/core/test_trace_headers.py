"""Checks on incoming trace-context headers before the propagator reads them."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

from llmobs_core._headers import invalid_trace_headers

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
STATE = "vendor=value"

TRACEPARENTS = [
    pytest.param(VALID, True, id="valid"),
    pytest.param(f" {VALID}\t", True, id="surrounding-blanks"),
    pytest.param("01" + VALID[2:] + "-future", True, id="future-version-extra"),
    pytest.param("00-zz-yy-01", False, id="malformed"),
    pytest.param(VALID.upper(), False, id="uppercase"),
    pytest.param(f"00-{'0' * 32}-b7ad6b7169203331-01", False, id="zero-trace-id"),
    pytest.param(
        f"00-0af7651916cd43dd8448eb211c80319c-{'0' * 16}-01", False, id="zero-span-id"
    ),
    pytest.param("ff" + VALID[2:], False, id="version-ff"),
    pytest.param(VALID + "-extra", False, id="version-00-extra"),
    pytest.param(f"{VALID},{VALID}", False, id="repeated"),
    pytest.param("0" * 10_000, False, id="oversized"),
    pytest.param("", False, id="empty"),
]


@pytest.mark.parametrize(("traceparent", "valid"), TRACEPARENTS)
def test_traceparent_check_matches_propagator(traceparent: str, valid: bool) -> None:
    extracted = TraceContextTextMapPropagator().extract(
        {"traceparent": traceparent}, context=otel_context.Context()
    )
    accepted = trace.get_current_span(extracted).get_span_context().is_valid

    assert accepted == valid
    assert (invalid_trace_headers({"traceparent": traceparent}) == ()) == valid


@pytest.mark.parametrize(("traceparent", "valid"), TRACEPARENTS)
def test_invalid_traceparent_drops_tracestate(traceparent: str, valid: bool) -> None:
    dropped = invalid_trace_headers({"traceparent": traceparent, "tracestate": STATE})

    expected = () if valid else ("traceparent", "tracestate")
    assert dropped == expected


def test_tracestate_alone_not_dropped_with_traceparent() -> None:
    assert invalid_trace_headers({"tracestate": STATE}) == ()
    assert invalid_trace_headers({"traceparent": "bad"}) == ("traceparent",)
    assert invalid_trace_headers({"tracestate": "bad state"}) == ("tracestate",)
