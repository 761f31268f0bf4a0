"""The fake provider as a subprocess, so it runs on its own core under load."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 10.0


@contextlib.contextmanager
def fake_provider_process(*, slow_seconds: float = 1.0) -> Iterator[str]:
    """Start ``python -m examples.fake_provider`` on a free loopback port.

    Yields:
        The provider's base URL, including ``/v1``.
    """
    command = [
        *(sys.executable, "-m", "examples.fake_provider"),
        *("--host", "127.0.0.1", "--port", "0", "--latency-scale", "0"),
        *("--slow-seconds", str(slow_seconds), "--log-level", "warning"),
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"fake provider did not start: {line!r}")
        yield f"{line.split()[1]}/v1"
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
