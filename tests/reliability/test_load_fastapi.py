"""Exactly one event per call when the FastAPI example gateway is under load.

The gateway (``python -m examples.fastapi_gateway``) and the fake provider
run as subprocesses, so this process only drives the load, with at most
``CONCURRENCY`` requests in flight. The gateway appends its JSON events to a
file through the handler of ``install_json_handler`` and its spans to
another through the SDK's ``BatchSpanProcessor``. Both files are read after
a SIGTERM, on which the gateway writes what it has queued before it exits.

Under this load some successful provider calls also exceed the provider
timeout, so the test compares each failure status of the events with the
HTTP statuses the client received, not with the planned mix.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

from tests.conftest import TEST_HASH_KEY
from tests.reliability._load import (
    CLIENT_OUTCOMES,
    Kind,
    plan,
    read_json_lines,
    scrape,
    send_all,
    wait_for_count,
)
from tests.reliability._processes import (
    fake_provider_process,
    fastapi_gateway_process,
    stop_process,
)

CALLS = 20_000
CONCURRENCY = 64
# A fifth of the fake provider's default latency: a stream then lasts tens of
# milliseconds, so a client that leaves after the first chunk leaves while it
# runs, and the call ends as cancelled.
LATENCY_SCALE = 0.2
PROVIDER_TIMEOUT_SECONDS = 0.5
SLOW_SECONDS = 1.0
SETTLE_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 60.0
# The SDK's batch processor drops spans when its queue is full (2,048 spans,
# the OTEL_BSP_MAX_QUEUE_SIZE default), so on a busy machine a count of spans
# would test the SDK's export speed. A queue larger than all the spans of the
# run rules that out.
SPAN_QUEUE_SIZE = 10 * CALLS


def test_one_event_per_call_under_load(tmp_path: Path) -> None:
    events_path = tmp_path / "events.jsonl"
    spans_path = tmp_path / "spans.jsonl"
    env = {
        "LLMOBS_HASH_KEY": TEST_HASH_KEY,
        "OTEL_BSP_MAX_QUEUE_SIZE": str(SPAN_QUEUE_SIZE),
    }
    kinds = plan(CALLS)

    with (
        fake_provider_process(
            slow_seconds=SLOW_SECONDS, latency_scale=LATENCY_SCALE
        ) as provider_url,
        fastapi_gateway_process(
            provider_url,
            events_path,
            spans_path=spans_path,
            provider_timeout=PROVIDER_TIMEOUT_SECONDS,
            env=env,
            stop_timeout=STOP_TIMEOUT_SECONDS,
        ) as (url, gateway),
    ):
        outcomes = asyncio.run(send_all(url, kinds, CONCURRENCY))
        requests_total = wait_for_count(
            lambda: scrape(url, "llm_requests_total"), CALLS, SETTLE_TIMEOUT_SECONDS
        )
        in_flight = scrape(url, "llm_calls_in_flight")
        dropped = scrape(url, "llmobs_events_dropped_total")
        emitter_errors = scrape(url, "llmobs_emitter_errors_total")
        stop_process(gateway, STOP_TIMEOUT_SECONDS)

    assert gateway.returncode == -signal.SIGTERM
    assert set(outcomes) <= CLIENT_OUTCOMES, outcomes
    assert outcomes["disconnected"] == kinds.count(Kind.DISCONNECT)
    assert outcomes["abandoned"] == kinds.count(Kind.ABANDON)
    assert requests_total == CALLS
    assert in_flight == 0
    assert dropped == 0
    assert emitter_errors == 0

    events = read_json_lines([events_path])
    assert len(events) == CALLS
    assert len({event["request_id"] for event in events}) == CALLS
    statuses = Counter(event["status"] for event in events)
    assert statuses["rate_limited"] == outcomes["429"]
    # A stream that fails after its first chunk has already sent 200, so its
    # event's failure status has no 502 or 504 to match.
    assert statuses["provider_error"] >= outcomes["502"]
    assert statuses["timeout"] >= outcomes["504"]
    # Only a client that left early cancels a call, and with the provider's
    # simulated latency most of them leave while the stream still runs.
    left_early = outcomes["disconnected"] + outcomes["abandoned"]
    assert statuses["cancelled"] <= left_early
    assert statuses["cancelled"] > 0

    spans = read_json_lines([spans_path])
    call_spans = [span for span in spans if span["name"] == "call_llm"]
    assert len(call_spans) == CALLS
    span_ids = {(span["trace_id"], span["span_id"]) for span in call_spans}
    event_ids = {(event["trace_id"], event["span_id"]) for event in events}
    assert span_ids == event_ids
