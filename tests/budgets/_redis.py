"""Start a private redis-server on a free loopback port for the budget tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

LOOPBACK_HOST = "127.0.0.1"
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def run_redis_server(startup_timeout: float = 10.0) -> Iterator[str]:
    """Run redis-server on 127.0.0.1 without persistence and yield its URL.

    The server is stopped by its PID on exit.

    Raises:
        RuntimeError: If the server does not reply to PING within the timeout.
    """
    assert REDIS_SERVER is not None
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="llmobs-redis-") as directory:
        command = [
            REDIS_SERVER,
            "--bind", LOOPBACK_HOST,
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _wait_for_ping(process, port, startup_timeout)
            yield f"redis://{LOOPBACK_HOST}:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stderr is not None:
                process.stderr.close()


def _wait_for_ping(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(
                f"redis-server exited with {process.returncode}: {stderr}"
            )
        if _answers_ping(port):
            return
        time.sleep(0.02)
    raise RuntimeError(
        f"redis-server on port {port} did not reply to PING in {timeout}s"
    )


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK_HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
