"""Throughput and tail latency through uvicorn, under loopback load from wrk.

Starts one uvicorn process per stack of ``benchmarks.server_app`` (httptools
HTTP parser, asyncio event loop, one process, on 127.0.0.1), warms each up,
then runs ``wrk --latency`` against them in interleaved rounds, the order
rotated each round. With two or more CPUs, the servers run on one CPU and
wrk on another (``taskset``). Every server is stopped by its PID at the end.

Needs ``wrk`` on PATH (Debian package ``wrk``). Run from the repository root:
``.venv/bin/python -m benchmarks.server``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchmarks._harness import (
    format_number,
    markdown_table,
    median,
    paired_ratio,
    spread,
)
from benchmarks.server_app import HELLO_PATH, STACK_ENV, STACKS

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0

LABELS = {
    "bare": "Starlette",
    "llmobs": "Starlette + llmobs",
    "otel-asgi": "Starlette + opentelemetry-instrumentation-asgi",
    "one-span": "Starlette + one SDK span, no other work (floor)",
    "llmobs-call": "Starlette + llmobs, one stubbed `call_llm` per request",
}

# (name, numerator stack, denominator stack, target minimum of the rps ratio).
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("llmobs / OTel ASGI", "llmobs", "otel-asgi", 3.0),
    ("llmobs / bare", "llmobs", "bare", 0.65),
    ("llmobs with one call_llm / bare", "llmobs-call", "bare", 0.45),
)

_LATENCY_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class WrkResult:
    """Figures of one wrk run.

    Attributes:
        requests_per_second: wrk's ``Requests/sec``.
        p50_ms: Median latency in milliseconds.
        p99_ms: 99th percentile latency in milliseconds.
        errors: Non-2xx/3xx responses plus socket errors.
    """

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s, p50, p99 and error counts from ``wrk --latency`` output.

    Raises:
        ValueError: If the output lacks the requests/s or latency lines.
    """
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None:
        raise ValueError(f"no Requests/sec line in wrk output:\n{output}")
    percentiles = {
        int(p): float(v) * _LATENCY_UNITS[unit]
        for p, v, unit in re.findall(
            r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\b", output, re.MULTILINE
        )
    }
    if set(percentiles) != {50, 99}:
        raise ValueError(
            f"no latency distribution in wrk output (use --latency):\n{output}"
        )
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx is not None:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets is not None:
        errors += sum(int(n) for n in sockets.groups())
    return WrkResult(float(rate.group(1)), percentiles[50], percentiles[99], errors)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_split() -> tuple[list[str], list[str]]:
    """Return command prefixes pinning the servers and wrk to different CPUs.

    Both are empty with fewer than two usable CPUs or without ``taskset``.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]


@dataclass
class Server:
    """One uvicorn process serving one stack."""

    stack: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def url(self) -> str:
        """URL of the benchmarked route."""
        return f"http://{HOST}:{self.port}{HELLO_PATH}"

    def stop(self) -> None:
        """Stop the process by PID: SIGTERM, then SIGKILL after a timeout."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_SECONDS)
        self.log.close()

    def output(self) -> str:
        """Return what the server wrote to stdout and stderr so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def start_server(stack: str, prefix: Sequence[str]) -> Server:
    """Start uvicorn for ``stack`` and wait until it serves ``GET /hello``.

    Raises:
        RuntimeError: If the server exits or does not respond in time.
    """
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - Server.stop() closes it
    command = [
        *prefix,
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "benchmarks.server_app:create_app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "asyncio",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, STACK_ENV: stack},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(stack, port, process, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            output = server.output()
            server.stop()
            raise RuntimeError(
                f"uvicorn for stack {stack} exited with {process.returncode}:\n{output}"
            )
        if _answers(port):
            return server
        if time.monotonic() > deadline:
            output = server.output()
            server.stop()
            raise RuntimeError(
                f"uvicorn for stack {stack} did not respond on port {port} within "
                f"{STARTUP_TIMEOUT_SECONDS:.0f} s:\n{output}"
            )
        time.sleep(0.1)


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", HELLO_PATH)
        response = connection.getresponse()
        return response.status == 200 and response.read() == b"hello"
    except OSError:
        return False
    finally:
        connection.close()


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int,
    prefix: Sequence[str],
) -> WrkResult:
    """Run wrk against ``url`` for a bounded time and parse its output.

    Raises:
        RuntimeError: If wrk fails.
    """
    command = [
        *prefix,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        url,
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with {completed.returncode}:\n"
            f"{completed.stdout}{completed.stderr}"
        )
    return parse_wrk(completed.stdout)


@dataclass
class ServerResults:
    """Results of one server run.

    Attributes:
        rounds: Number of rounds.
        seconds: Duration of each wrk run.
        connections: wrk connections.
        pinned: Whether servers and wrk ran on separate CPUs.
        runs: wrk results by stack, one per round.
    """

    rounds: int
    seconds: float
    connections: int
    pinned: bool
    runs: dict[str, list[WrkResult]] = field(default_factory=dict)

    def rps(self, stack: str) -> list[float]:
        """Requests/s of a stack, one value per round."""
        return [run.requests_per_second for run in self.runs[stack]]

    def ratio(self, stack: str, reference: str) -> float:
        """Median per-round ratio of requests/s, stack / reference."""
        return paired_ratio(self.rps(stack), self.rps(reference))


def run_server(
    *, rounds: int, seconds: float, warmup_seconds: float, connections: int = 32
) -> ServerResults:
    """Start every stack's server, then load them in interleaved rounds.

    Raises:
        RuntimeError: If wrk is missing, or a server or wrk fails.
    """
    if shutil.which("wrk") is None:
        raise RuntimeError(
            "wrk is not installed; install the Debian package: apt-get install -y wrk"
        )
    server_prefix, wrk_prefix = cpu_split()
    results = ServerResults(rounds, seconds, connections, bool(server_prefix))
    servers: list[Server] = []
    try:
        for stack in STACKS:
            servers.append(start_server(stack, server_prefix))
        for server in servers:
            run_wrk(
                server.url,
                seconds=warmup_seconds,
                connections=connections,
                threads=1,
                prefix=wrk_prefix,
            )
        for round_index in range(rounds):
            shift = round_index % len(servers)
            for server in [*servers[shift:], *servers[:shift]]:
                result = run_wrk(
                    server.url,
                    seconds=seconds,
                    connections=connections,
                    threads=1,
                    prefix=wrk_prefix,
                )
                results.runs.setdefault(server.stack, []).append(result)
    finally:
        for server in servers:
            server.stop()
    return results


def render(results: ServerResults) -> str:
    """Format the server results as Markdown."""
    rows = []
    for stack, runs in results.runs.items():
        rps = results.rps(stack)
        rows.append(
            [
                LABELS[stack],
                format_number(median(rps), 0),
                "" if stack == "bare" else f"{results.ratio(stack, 'bare') * 100:.0f}%",
                format_number(median([r.p50_ms for r in runs]), 2),
                format_number(median([r.p99_ms for r in runs]), 2),
                f"{spread(rps) * 100:.0f}%",
                str(sum(r.errors for r in runs)),
            ]
        )
    table = markdown_table(
        ["stack", "requests/s", "of bare", "p50 ms", "p99 ms", "spread", "errors"],
        rows,
    )
    target_rows = []
    for name, stack, reference, minimum in TARGETS:
        value = results.ratio(stack, reference)
        target_rows.append(
            [
                name,
                f"{value:.2f}",
                f">= {minimum:.2f}",
                "yes" if value >= minimum else "no",
            ]
        )
    targets = markdown_table(
        ["requests/s ratio", "measured", "target", "met"], target_rows
    )
    placement = (
        "servers on one CPU and wrk on another"
        if results.pinned
        else "servers and wrk not pinned"
    )
    return "\n".join(
        [
            f"uvicorn (httptools, asyncio loop, 1 process), `wrk -t1 "
            f"-c{results.connections} -d{results.seconds:.0f}s --latency`, "
            f"median of {results.rounds} interleaved rounds, {placement}. "
            "Ratios are per-round ratios of the same round.",
            "",
            table,
            "",
            targets,
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server benchmark and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=5, help="length of a wrk run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds per server")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    args = parser.parse_args(argv)
    results = run_server(
        rounds=args.rounds,
        seconds=args.seconds,
        warmup_seconds=args.warmup,
        connections=args.connections,
    )
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
