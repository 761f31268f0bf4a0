"""The Flask example gateway under a real gunicorn with two worker processes.

Gunicorn runs as a subprocess with ``examples/flask_gateway/gunicorn.conf.py``
and ``PROMETHEUS_MULTIPROC_DIR`` set in its environment; the fake provider
runs in this process. Every request uses a new connection, so the workers'
accept calls spread the requests over both of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from examples.fake_provider.app import FakeProviderConfig
from examples.fake_provider.app import create_app as create_fake_provider
from tests._servers import LOOPBACK_HOST, run_uvicorn_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = REPO_ROOT / "examples" / "flask_gateway" / "gunicorn.conf.py"
WORKERS = 2
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 3
SCRAPES = 6
CLIENT_TIMEOUT_SECONDS = 10.0


@dataclass
class Gunicorn:
    """A running gunicorn master and where its workers write."""

    url: str
    process: subprocess.Popen[bytes]
    worker_pids: set[int]
    telemetry_dir: Path
    metrics_dir: Path
    log_path: Path


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


def start_gunicorn(tmp_path: Path, provider_url: str) -> Gunicorn:
    """Start gunicorn on a free port; retry with another port if it was taken."""
    telemetry_dir = tmp_path / "telemetry"
    metrics_dir = tmp_path / "prometheus"
    log_path = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_PROVIDER_URL": provider_url,
        "GATEWAY_TELEMETRY_DIR": str(telemetry_dir),
        "PYTHONPATH": str(REPO_ROOT),
    }
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        command = [
            *(sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)),
            *("--bind", f"{LOOPBACK_HOST}:{port}", "--workers", str(WORKERS)),
            *("--graceful-timeout", "5"),
        ]
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        url = f"http://{LOOPBACK_HOST}:{port}"
        try:
            pids = wait_for_workers(url, process, log_path, set(), WORKERS)
        except BaseException:
            stop_gunicorn(process)
            port_taken = "Connection in use" in log_path.read_text(encoding="utf-8")
            if port_taken and attempt < PORT_ATTEMPTS:
                continue
            raise
        return Gunicorn(url, process, pids, telemetry_dir, metrics_dir, log_path)
    raise AssertionError("unreachable: the last attempt returns or raises")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for_workers(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    known: set[int],
    count: int,
) -> set[int]:
    """Poll /healthz until ``count`` worker pids not in ``known`` responded."""
    pids: set[int] = set()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while len(pids) < count:
        if process.poll() is not None:
            log = log_path.read_text(encoding="utf-8")
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log}")
        if time.monotonic() > deadline:
            log = log_path.read_text(encoding="utf-8")
            raise RuntimeError(f"gunicorn workers did not answer in time:\n{log}")
        try:
            response = httpx.get(f"{url}/healthz", timeout=1.0)
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        pid = response.json()["pid"]
        if pid not in known:
            pids.add(pid)
    return pids


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    """Stop the master with SIGTERM; after a timeout, SIGKILL it and its workers."""
    if process.poll() is not None:
        return
    workers = child_pids(process.pid)
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # The master goes first, so that it cannot fork replacements.
        workers |= child_pids(process.pid)
        process.kill()
        process.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def child_pids(pid: int) -> set[int]:
    """Return the pids of a process's children (Linux /proc; else empty)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(child) for child in text.split()}


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


def events_per_worker(telemetry_dir: Path) -> Counter[int]:
    counts: Counter[int] = Counter()
    for path in telemetry_dir.glob("events-*.jsonl"):
        pid = int(path.stem.removeprefix("events-"))
        lines = path.read_text(encoding="utf-8").splitlines()
        counts[pid] = sum(1 for line in lines if line.strip())
    return counts


def test_counts_summed_over_workers(gunicorn: Gunicorn) -> None:
    responses = send_requests(gunicorn.url, 200)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 200}
    per_worker = events_per_worker(gunicorn.telemetry_dir)
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
    per_worker = events_per_worker(gunicorn.telemetry_dir)
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
