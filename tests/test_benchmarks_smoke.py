"""Smoke tests of the benchmark scripts: they run and print their tables.

Each script runs in its own process with tiny sizes, because it configures
llmobs and telemetry process-wide. Nothing here checks a timing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.server import parse_wrk

ROOT = Path(__file__).resolve().parent.parent


def run_module(module: str, *args: str, timeout: float = 120) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def test_inprocess_stacks_run() -> None:
    output = run_module(
        "benchmarks.inprocess", "--requests", "5", "--rounds", "1", "--warmup", "1"
    )
    for label in (
        "| Starlette |",
        "| Starlette + llmobs |",
        "| FastAPI + llmobs |",
        "| Flask + llmobs |",
    ):
        assert label in output
    assert "| overhead ratio |" in output


def test_per_call_runs() -> None:
    output = run_module(
        "benchmarks.per_call", "--calls", "5", "--rounds", "1", "--warmup", "1"
    )
    assert "| llmobs `call_llm` + `record()` |" in output
    assert "| one observed call |" in output
    assert "events dropped: 0" in output


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.skipif(
    importlib.util.find_spec("httptools") is None, reason="httptools is not installed"
)
def test_server_benchmark_runs() -> None:
    output = run_module(
        "benchmarks.server", "--rounds", "1", "--seconds", "1", "--warmup", "1"
    )
    assert "| Starlette + llmobs |" in output
    assert "| llmobs / bare |" in output


def test_parse_wrk_latency_output() -> None:
    output = """Running 5s test @ http://127.0.0.1:8000/hello
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.43ms  500.00us  15.00ms   90.00%
    Req/Sec    13.20k     1.10k   14.00k    80.00%
  Latency Distribution
     50%  850.00us
     75%    2.50ms
     90%    3.00ms
     99%    1.20s
  65000 requests in 5.00s, 8.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  13000.50
Transfer/sec:      1.70MB
"""
    result = parse_wrk(output)
    assert result.requests_per_second == 13000.50
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.errors == 7


def test_parse_wrk_rejects_output_without_latency() -> None:
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk("Requests/sec:  100.00\n")
