"""Exactly one event per call when the Flask example gateway is under load.

The gateway runs under gunicorn with two ``gthread`` workers
(``examples/flask_gateway/gunicorn.conf.py``), and the fake provider runs as
another subprocess, so this process only drives the load. Each worker
appends its JSON events to ``events-<pid>.jsonl`` and its spans to
``spans-<pid>.jsonl``; ``/metrics`` sums the counters of both workers from
``PROMETHEUS_MULTIPROC_DIR``. The files are read after SIGTERM, on which
each worker writes what it has queued before it exits.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests._gunicorn import start_gunicorn, stop_gunicorn
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
from tests.reliability._processes import fake_provider_process

CALLS = 10_000
CONCURRENCY = 64
# Threads per worker: enough for CONCURRENCY requests that wait on the provider.
THREADS = 32
# As in test_load_fastapi: streams still run when clients leave.
LATENCY_SCALE = 0.2
PROVIDER_TIMEOUT_SECONDS = 0.5
SLOW_SECONDS = 1.0
SETTLE_TIMEOUT_SECONDS = 30.0
GRACEFUL_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 60.0
# As in test_load_fastapi: no span may be dropped for a full SDK queue.
SPAN_QUEUE_SIZE = 10 * CALLS


def test_one_event_per_call_under_gunicorn(tmp_path: Path) -> None:
    env = {
        "LLMOBS_HASH_KEY": TEST_HASH_KEY,
        "GATEWAY_PROVIDER_TIMEOUT": str(PROVIDER_TIMEOUT_SECONDS),
        "OTEL_BSP_MAX_QUEUE_SIZE": str(SPAN_QUEUE_SIZE),
    }
    kinds = plan(CALLS)

    with fake_provider_process(
        slow_seconds=SLOW_SECONDS, latency_scale=LATENCY_SCALE
    ) as provider_url:
        server = start_gunicorn(
            tmp_path,
            provider_url,
            env=env,
            graceful_timeout=GRACEFUL_TIMEOUT_SECONDS,
            threads=THREADS,
        )
        try:
            outcomes = asyncio.run(send_all(server.url, kinds, CONCURRENCY))
            requests_total = wait_for_count(
                lambda: scrape(server.url, "llm_requests_total"),
                CALLS,
                SETTLE_TIMEOUT_SECONDS,
            )
            in_flight = scrape(server.url, "llm_calls_in_flight")
            dropped = scrape(server.url, "llmobs_events_dropped_total")
            emitter_errors = scrape(server.url, "llmobs_emitter_errors_total")
        finally:
            stop_gunicorn(server.process, STOP_TIMEOUT_SECONDS)

    assert server.process.returncode == 0
    assert set(outcomes) <= CLIENT_OUTCOMES, outcomes
    assert outcomes["disconnected"] == kinds.count(Kind.DISCONNECT)
    assert outcomes["abandoned"] == kinds.count(Kind.ABANDON)
    assert requests_total == CALLS
    assert in_flight == 0
    assert dropped == 0
    assert emitter_errors == 0

    event_files = sorted(server.telemetry_dir.glob("events-*.jsonl"))
    assert {int(path.stem.removeprefix("events-")) for path in event_files} == (
        server.worker_pids
    )
    per_worker = [len(read_json_lines([path])) for path in event_files]
    for count in per_worker:
        assert count > 0, f"a worker served no call: {per_worker}"
    events = read_json_lines(event_files)
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

    spans = read_json_lines(sorted(server.telemetry_dir.glob("spans-*.jsonl")))
    call_spans = [span for span in spans if span["name"] == "call_llm"]
    assert len(call_spans) == CALLS
    span_ids = {(span["trace_id"], span["span_id"]) for span in call_spans}
    event_ids = {(event["trace_id"], event["span_id"]) for event in events}
    assert span_ids == event_ids
