"""Run Debian's promtool and prometheus binaries in tests.

Both come from Debian's ``prometheus`` package, which ``make tools`` installs
where apt-get is available. Tests that need them carry the ``prometheus``
marker and are skipped, with the reason, when a binary is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES_FILE = RULES_DIR / "llm_rules.yml"
GENERATOR = RULES_DIR / "generate.py"
LOOPBACK_HOST = "127.0.0.1"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
_MISSING = (
    "not found on PATH; install Debian's prometheus package "
    "(make tools, or apt-get install --no-install-recommends prometheus)"
)

requires_promtool = pytest.mark.skipif(PROMTOOL is None, reason=f"promtool {_MISSING}")
requires_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason=f"prometheus {_MISSING}"
)

_POLL_SECONDS = 0.1
_STOP_TIMEOUT_SECONDS = 10.0


def load_generator() -> ModuleType:
    """Import ``deploy/prometheus/generate.py``, which is a script, not a package."""
    spec = importlib.util.spec_from_file_location("llm_rules_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up in sys.modules while it builds classes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``args`` and return the finished process."""
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    """A running prometheus process and its HTTP API client."""

    process: subprocess.Popen[bytes]
    url: str
    client: httpx.Client
    log_path: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query and return its result vector."""
        response = self.client.get("/api/v1/query", params={"query": expr})
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query_value(self, expr: str) -> float | None:
        """Return the value of a one-element query result, or None if empty."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, f"{expr} returned {len(result)} series: {result}"
        return float(result[0]["value"][1])

    def wait_for_value(
        self, expr: str, expected: float, timeout: float = 30.0
    ) -> float | None:
        """Poll ``expr`` until it returns ``expected`` or ``timeout`` passes.

        Returns:
            The last value, which the caller compares with ``expected``.
        """
        deadline = time.monotonic() + timeout
        value = self.query_value(expr)
        while value != expected and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            value = self.query_value(expr)
        return value

    def log(self) -> str:
        """Return what prometheus has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def run_prometheus(
    config: str,
    work_dir: Path,
    *,
    startup_timeout: float = 20.0,
    attempts: int = 3,
) -> Iterator[PrometheusServer]:
    """Start prometheus on a free 127.0.0.1 port and stop it by PID on exit.

    The configuration, the TSDB and the log go to ``work_dir``. Because the
    port is picked before prometheus binds it, another process can take it
    in between, so the start is then retried on a new port.

    Args:
        config: The prometheus.yml text.
        work_dir: An empty directory for the run.
        startup_timeout: Seconds to wait for ``/-/ready`` on each attempt.
        attempts: Number of ports to try.

    Raises:
        RuntimeError: prometheus exited or was not ready in time.
    """
    assert PROMETHEUS is not None
    config_path = work_dir / "prometheus.yml"
    config_path.write_text(config, encoding="utf-8")
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = work_dir / f"prometheus-{attempt}.log"
        command = [
            PROMETHEUS,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={work_dir / f'tsdb-{attempt}'}",
            f"--web.listen-address={LOOPBACK_HOST}:{port}",
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=work_dir
            )
        url = f"http://{LOOPBACK_HOST}:{port}"
        try:
            with httpx.Client(base_url=url, timeout=5.0) as client:
                server = PrometheusServer(process, url, client, log_path)
                if _wait_until_ready(server, startup_timeout):
                    yield server
                    return
        finally:
            _stop(process)
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
        if "address already in use" not in log_text:
            break
    raise RuntimeError(
        f"prometheus did not become ready on {url}; its log:\n{log_text}"
    )


def _wait_until_ready(server: PrometheusServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        with contextlib.suppress(httpx.TransportError):
            if server.client.get("/-/ready").status_code == 200:
                return True
        time.sleep(_POLL_SECONDS)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT_SECONDS)


def is_finite_number(value: float | None) -> bool:
    """Return whether ``value`` is a number other than NaN or an infinity."""
    return value is not None and math.isfinite(value)


def promql_rules_file(path: Path, expressions: Sequence[str]) -> Path:
    """Write each expression as a recording rule so promtool can parse it.

    Returns:
        ``path``, a rule file with one group and one rule per expression.
    """
    lines = ["groups:", "  - name: parse_check", "    rules:"]
    for index, expr in enumerate(expressions):
        lines.append(f"      - record: parse_check:expr_{index}")
        lines.append("        expr: |-")
        lines.extend(f"          {line}" for line in expr.splitlines())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
