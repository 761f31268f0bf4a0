"""Run the Flask example gateway under a real gunicorn in tests.

Gunicorn runs as a subprocess with ``examples/flask_gateway/gunicorn.conf.py``
and ``PROMETHEUS_MULTIPROC_DIR`` set in its environment, on a free
127.0.0.1 port. The master and its workers are stopped by their pids.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests._servers import LOOPBACK_HOST

REPO_ROOT = Path(__file__).resolve().parents[1]
GUNICORN_CONFIG = REPO_ROOT / "examples" / "flask_gateway" / "gunicorn.conf.py"
WORKERS = 2
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 3


@dataclass
class Gunicorn:
    """A running gunicorn master and where its workers write."""

    url: str
    process: subprocess.Popen[bytes]
    worker_pids: set[int]
    telemetry_dir: Path
    metrics_dir: Path
    log_path: Path


def start_gunicorn(
    tmp_path: Path,
    provider_url: str,
    *,
    env: Mapping[str, str] | None = None,
    graceful_timeout: int = 5,
    threads: int | None = None,
) -> Gunicorn:
    """Start gunicorn on a free port; retry with another port if it was taken.

    Args:
        tmp_path: Directory for the worker files, the metrics and the log.
        provider_url: Base URL of the provider, including ``/v1``.
        env: Environment variables to add to the server's environment.
        graceful_timeout: Seconds the workers get to finish their requests
            and exit after SIGTERM.
        threads: Request threads per worker, if not the configuration's.
    """
    telemetry_dir = tmp_path / "telemetry"
    metrics_dir = tmp_path / "prometheus"
    log_path = tmp_path / "gunicorn.log"
    server_env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_PROVIDER_URL": provider_url,
        "GATEWAY_TELEMETRY_DIR": str(telemetry_dir),
        "PYTHONPATH": str(REPO_ROOT),
        **(env or {}),
    }
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        command = [
            *(sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)),
            *("--bind", f"{LOOPBACK_HOST}:{port}", "--workers", str(WORKERS)),
            *("--graceful-timeout", str(graceful_timeout)),
        ]
        if threads is not None:
            command += ["--threads", str(threads)]
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=server_env,
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
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
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


def stop_gunicorn(
    process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS
) -> None:
    """Stop the master with SIGTERM; after ``timeout``, SIGKILL it and its workers."""
    if process.poll() is not None:
        return
    workers = child_pids(process.pid)
    process.terminate()
    try:
        process.wait(timeout)
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
