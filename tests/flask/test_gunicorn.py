"""The Flask example gateway under a real gunicorn with two worker processes.

Gunicorn runs as a subprocess with ``examples/flask_gateway/gunicorn.conf.py``
and ``PROMETHEUS_MULTIPROC_DIR`` set in its environment; the fake provider
runs in this process. Every request uses a new connection, so the workers'
accept calls spread the requests over both of them.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from examples.fake_provider.app import FakeProviderConfig
from examples.fake_provider.app import create_app as create_fake_provider

# free_port stays importable from here for tests/e2e/test_otlp_export.py.
from tests._gunicorn import (
    Gunicorn,
    free_port,
    start_gunicorn,
    stop_gunicorn,
    wait_for_workers,
)
from tests._servers import run_uvicorn_in_thread

SCRAPES = 6
CLIENT_TIMEOUT_SECONDS = 10.0
EVENTS_TIMEOUT_SECONDS = 10.0


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    config = FakeProviderConfig(latency_scale=0)
    with run_uvicorn_in_thread(create_fake_provider(config)) as url:
        yield f"{url}/v1"


@pytest.fixture
def gunicorn(tmp_path: Path, provider_url: str) -> Iterator[Gunicorn]:
    server = start_gunicorn(tmp_path, provider_url)
    try:
        yield server
    finally:
        stop_gunicorn(server.process)


def send_requests(url: str, count: int) -> list[httpx.Response]:
    """Send ``count`` feature requests, 8 at a time, each on a new connection."""
    limits = httpx.Limits(max_keepalive_connections=0)
    with (
        httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_SECONDS, limits=limits) as c,
        ThreadPoolExecutor(max_workers=8) as executor,
    ):

        def send(index: int) -> httpx.Response:
            path = "/api/chat/assistant" if index % 2 else "/api/nutrition/coach"
            body = {
                "message": f"How do I export report {index}?",
                "stream": index % 5 == 0,
            }
            return c.post(path, json=body, headers={"x-tenant-id": f"t{index % 3}"})

        return list(executor.map(send, range(count)))


def scrape(url: str, sample_name: str) -> float:
    """Return the sum of one sample name over all series of one scrape."""
    with httpx.Client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        response = client.get(f"{url}/metrics")
    response.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == sample_name
    )


def events_per_worker(telemetry_dir: Path, expected: int) -> Counter[int]:
    """Count the event lines per worker pid, once ``expected`` are written.

    The workers write events from a background thread, which waits up to
    50 ms to gather a batch, so the last lines may follow the responses.
    After EVENTS_TIMEOUT_SECONDS the counts are returned as they are.
    """
    deadline = time.monotonic() + EVENTS_TIMEOUT_SECONDS
    while True:
        counts: Counter[int] = Counter()
        for path in telemetry_dir.glob("events-*.jsonl"):
            pid = int(path.stem.removeprefix("events-"))
            lines = path.read_text(encoding="utf-8").splitlines()
            counts[pid] = sum(1 for line in lines if line.strip())
        if sum(counts.values()) >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def test_counts_summed_over_workers(gunicorn: Gunicorn) -> None:
    responses = send_requests(gunicorn.url, 200)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 200}
    per_worker = events_per_worker(gunicorn.telemetry_dir, expected=200)
    assert set(per_worker) == gunicorn.worker_pids
    for pid in gunicorn.worker_pids:
        assert per_worker[pid] > 0, f"worker {pid} served no request: {per_worker}"
    assert sum(per_worker.values()) == 200
    totals = [scrape(gunicorn.url, "llm_requests_total") for _ in range(SCRAPES)]
    for total in totals:
        assert total == 200
    assert scrape(gunicorn.url, "llm_calls_in_flight") == 0


def test_killed_worker_keeps_counts(gunicorn: Gunicorn) -> None:
    send_requests(gunicorn.url, 60)
    per_worker = events_per_worker(gunicorn.telemetry_dir, expected=60)
    victim = max(gunicorn.worker_pids, key=lambda pid: per_worker[pid])
    assert per_worker[victim] > 0
    assert scrape(gunicorn.url, "llm_requests_total") == 60

    os.kill(victim, signal.SIGKILL)
    replacement = wait_for_workers(
        gunicorn.url,
        gunicorn.process,
        gunicorn.log_path,
        known=gunicorn.worker_pids,
        count=1,
    )

    assert victim not in replacement
    totals = [scrape(gunicorn.url, "llm_requests_total") for _ in range(SCRAPES)]
    for total in totals:
        assert total == 60
    assert not (gunicorn.metrics_dir / f"gauge_livesum_{victim}.db").exists()
    assert (gunicorn.metrics_dir / f"counter_{victim}.db").exists()
    assert scrape(gunicorn.url, "llm_calls_in_flight") == 0
    send_requests(gunicorn.url, 20)
    assert scrape(gunicorn.url, "llm_requests_total") == 80
