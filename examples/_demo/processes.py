"""Start the demo's servers as subprocesses and stop them by PID."""

from __future__ import annotations

import dataclasses
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

LISTENING_PREFIX = "LISTENING "


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

    def start(self, name: str, module: str, args: Sequence[str], log_path: Path) -> str:
        """Start ``python -m module args`` and return the URL it listens on.

        Raises:
            DemoError: The server exited or stayed silent for
                ``startup_timeout`` seconds. It is stopped on exit either way.
        """
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=self.cwd,
                env=self._child_environment(),
            )
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(
            target=_drain, args=(process, lines), name=f"{name} stdout", daemon=True
        )
        server = ServerProcess(name, process, log_path, lines, reader)
        self._servers.append(server)
        reader.start()
        return self._wait_for_url(server)

    def stop(self, name: str) -> None:
        """Stop the named server. Stopping a stopped server does nothing."""
        for server in self._servers:
            if server.name == name:
                self._stop(server)

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
