"""The fake provider and the FastAPI example gateway as subprocesses.

Each runs in its own interpreter, so under load it gets a core of its own
instead of sharing the test's. Both print ``LISTENING <url>`` on stdout once
they accept connections, and both stop on SIGTERM after a graceful shutdown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 10.0


@contextlib.contextmanager
def announced_process(
    module: str,
    arguments: list[str],
    *,
    env: Mapping[str, str] | None = None,
    stop_timeout: float = STOP_TIMEOUT_SECONDS,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``python -m module`` and yield the URL of its LISTENING line.

    On exit the process gets SIGTERM, then SIGKILL if it has not ended after
    ``stop_timeout`` seconds.

    Yields:
        The URL the process printed, and the process.

    Raises:
        RuntimeError: If the first line on stdout is not a LISTENING line;
            the message has that line and the exit status.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", module, *arguments],
        cwd=REPO_ROOT,
        env=None if env is None else {**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("LISTENING "):
            raise RuntimeError(
                f"{module} did not start: first line {line!r}, "
                f"exit status {process.poll()}"
            )
        yield line.split()[1], process
    finally:
        stop_process(process, stop_timeout)
        if process.stdout is not None:
            process.stdout.close()


def stop_process(process: subprocess.Popen[str], timeout: float) -> None:
    """Send SIGTERM and wait; send SIGKILL if the process outlives ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def fake_provider_process(
    *, slow_seconds: float = 1.0, latency_scale: float = 0.0
) -> Iterator[str]:
    """Start ``python -m examples.fake_provider`` on a free loopback port.

    Args:
        slow_seconds: Delay before the response to a ``slow`` request.
        latency_scale: Factor for the simulated time to first token and time
            per token, 0 for none.

    Yields:
        The provider's base URL, including ``/v1``.
    """
    arguments = [
        *("--host", "127.0.0.1", "--port", "0"),
        *("--latency-scale", str(latency_scale)),
        *("--slow-seconds", str(slow_seconds), "--log-level", "warning"),
    ]
    with announced_process("examples.fake_provider", arguments) as (url, _):
        yield f"{url}/v1"


@contextlib.contextmanager
def fastapi_gateway_process(
    provider_url: str,
    events_path: Path,
    *,
    spans_path: Path | None = None,
    provider_timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
    stop_timeout: float = STOP_TIMEOUT_SECONDS,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``python -m examples.fastapi_gateway`` on a free loopback port.

    The gateway appends its call events to ``events_path`` and, if given, its
    spans to ``spans_path``. On SIGTERM it writes the queued events and
    exports the buffered spans before it exits.

    Yields:
        The gateway's base URL, and the process.
    """
    arguments = [
        *("--provider-url", provider_url, "--port", "0"),
        *("--events-file", str(events_path), "--log-level", "warning"),
        *("--provider-timeout", str(provider_timeout)),
    ]
    if spans_path is not None:
        arguments += ["--spans-file", str(spans_path)]
    with announced_process(
        "examples.fastapi_gateway", arguments, env=env, stop_timeout=stop_timeout
    ) as started:
        yield started
