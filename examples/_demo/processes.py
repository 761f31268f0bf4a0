"""Start the demo's servers as subprocesses and stop them by PID."""

from __future__ import annotations

import dataclasses
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

LISTENING_PREFIX = "LISTENING "
POLL_SECONDS = 0.05


class DemoError(Exception):
    """A step of the demo failed. The message names the step and its log file."""


@dataclasses.dataclass(slots=True)
class ServerProcess:
    """One server subprocess and the thread that drains its stdout."""

    name: str
    process: subprocess.Popen[str]
    log_path: Path
    lines: queue.Queue[str | None]
    reader: threading.Thread


class ServerGroup:
    """Own the demo's server subprocesses and stop all of them on exit.

    Each server is a ``python -m <module>`` that prints ``LISTENING <url>`` on
    stdout once it accepts connections. Its stderr goes to a log file.

    Args:
        cwd: Working directory of the servers, also put first on PYTHONPATH.
        startup_timeout: Seconds to wait for a server's LISTENING line.
        stop_timeout: Seconds to wait after SIGTERM before sending SIGKILL.
    """

    def __init__(
        self, cwd: Path, *, startup_timeout: float = 30.0, stop_timeout: float = 10.0
    ) -> None:
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._servers: list[ServerProcess] = []

    def __enter__(self) -> ServerGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for server in reversed(self._servers):
            self._stop(server)

    def start(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Start ``python -m module args`` and return the URL it listens on.

        Args:
            name: Server name, for messages and ``stop``.
            module: Module run with ``python -m``.
            args: Command-line arguments of the module.
            log_path: File that receives the server's stderr.
            env: Variables added to the server's environment.

        Raises:
            DemoError: The server exited or stayed silent for
                ``startup_timeout`` seconds. It is stopped on exit either way.
        """
        server = self._spawn(name, module, args, log_path, env)
        return self._wait_for_url(server)

    def start_polled(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        log_path: Path,
        *,
        is_ready: Callable[[], bool],
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``python -m module args`` and call ``is_ready`` until it is.

        For servers that print no LISTENING line, such as gunicorn. The other
        arguments are those of ``start``.

        Raises:
            DemoError: The server exited, or ``is_ready`` stayed false for
                ``startup_timeout`` seconds. It is stopped on exit either way.
        """
        server = self._spawn(name, module, args, log_path, env)
        deadline = time.monotonic() + self.startup_timeout
        while not is_ready():
            code = server.process.poll()
            if code is not None:
                raise DemoError(
                    f"{server.name} exited with code {code} before it was ready. "
                    f"See {server.log_path}"
                )
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{server.name} was not ready within {self.startup_timeout:g} s. "
                    f"See {server.log_path}"
                )
            time.sleep(POLL_SECONDS)

    def stop(self, name: str) -> None:
        """Stop the named server. Stopping a stopped server does nothing."""
        for server in self._servers:
            if server.name == name:
                self._stop(server)

    def _spawn(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None,
    ) -> ServerProcess:
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=self.cwd,
                env={**self._child_environment(), **(env or {})},
            )
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(
            target=_drain, args=(process, lines), name=f"{name} stdout", daemon=True
        )
        server = ServerProcess(name, process, log_path, lines, reader)
        self._servers.append(server)
        reader.start()
        return server

    def _child_environment(self) -> dict[str, str]:
        paths = [str(self.cwd), os.environ.get("PYTHONPATH", "")]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}

    def _wait_for_url(self, server: ServerProcess) -> str:
        deadline = time.monotonic() + self.startup_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = server.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                code = server.process.wait()
                raise DemoError(
                    f"{server.name} exited with code {code} before it was ready. "
                    f"See {server.log_path}"
                )
            if line.startswith(LISTENING_PREFIX):
                return line.removeprefix(LISTENING_PREFIX).strip()
        raise DemoError(
            f"{server.name} did not print its LISTENING line within "
            f"{self.startup_timeout:g} s. See {server.log_path}"
        )

    def _stop(self, server: ServerProcess) -> None:
        process = server.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"{server.name} (pid {process.pid}) ignored SIGTERM for "
                    f"{self.stop_timeout:g} s, sending SIGKILL",
                    file=sys.stderr,
                )
                process.kill()
                process.wait()
        server.reader.join(self.stop_timeout)
        if process.stdout is not None and not server.reader.is_alive():
            process.stdout.close()


def _drain(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Queue each stdout line, then None at end of file, so the pipe never fills."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)
    lines.put(None)


def free_port(host: str) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    For servers that cannot report the port they bound, such as gunicorn.
    Another process may take the port before the server binds it, so the
    caller retries with a new port when the server fails to bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port
