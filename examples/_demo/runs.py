"""Run one example gateway against the fake provider and collect what it recorded.

``run_fastapi_gateway`` serves the FastAPI example with uvicorn in one
process. ``run_flask_gateway`` serves the Flask example with gunicorn and two
worker processes, which share one Prometheus multiprocess directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import tempfile
import time
from pathlib import Path

import httpx

from examples._demo.processes import DemoError, ServerGroup, free_port
from examples._demo.report import Record, read_json_lines
from examples._demo.traffic import Outcome, plan_requests, send_requests

HOST = "127.0.0.1"
CLIENT_TIMEOUT_SECONDS = 30.0

FLASK_WORKERS = 2
GUNICORN_CONFIG = Path("examples/flask_gateway/gunicorn.conf.py")
GUNICORN_NAME = "flask gateway"
# Gunicorn retries a busy port for about 5 s and then exits. The port comes
# from free_port(), so a conflict means another process took it meanwhile.
PORT_ATTEMPTS = 3
_PORT_IN_USE = "Connection in use"
# Per-worker file names written by examples/flask_gateway/_telemetry.py.
_WORKER_FILE = re.compile(r"(events|spans)-(\d+)\.jsonl")


@dataclasses.dataclass(frozen=True, slots=True)
class TrafficSettings:
    """Traffic plan and provider timeout of one gateway run.

    Attributes:
        requests: Number of requests.
        concurrency: Maximum number of requests in flight.
        seed: Seed of the traffic plan.
        provider_timeout: The gateway's provider timeout, in seconds.
    """

    requests: int
    concurrency: int
    seed: int
    provider_timeout: float


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayRun:
    """Everything the demo collected from one gateway.

    Attributes:
        url: Base URL the gateway listened on.
        outcomes: One outcome per request sent.
        seconds: Time the traffic took.
        metrics_text: Body of one ``GET /metrics`` after the traffic.
        events: Call events of all the gateway's processes.
        spans: Finished spans of all the gateway's processes.
        events_per_worker: Number of call events per worker pid; empty for a
            gateway served by one process.
    """

    url: str
    outcomes: list[Outcome]
    seconds: float
    metrics_text: str
    events: list[Record]
    spans: list[Record]
    events_per_worker: dict[int, int]


def run_fastapi_gateway(
    servers: ServerGroup,
    traffic: TrafficSettings,
    provider_url: str,
    output_dir: Path,
) -> GatewayRun:
    """Serve the FastAPI example, send the traffic, then stop the gateway.

    Events and spans are written to ``events.jsonl`` and ``spans.jsonl`` in
    ``output_dir``, the server log to ``gateway.log``.
    """
    events_path = output_dir / "events.jsonl"
    spans_path = output_dir / "spans.jsonl"
    for path in (events_path, spans_path):
        path.unlink(missing_ok=True)
    arguments = [
        *("--provider-url", f"{provider_url}/v1", "--host", HOST, "--port", "0"),
        *("--provider-timeout", str(traffic.provider_timeout)),
        *("--events-file", str(events_path), "--spans-file", str(spans_path)),
    ]
    name = "fastapi gateway"
    url = servers.start(
        name, "examples.fastapi_gateway", arguments, output_dir / "gateway.log"
    )
    print(f"Gateway at {url}", flush=True)
    outcomes, seconds, metrics_text = _send_traffic(traffic, url)
    # Stopped before the files are read: the gateway writes its last spans
    # when it shuts down.
    servers.stop(name)
    return GatewayRun(
        url,
        outcomes,
        seconds,
        metrics_text,
        read_json_lines(events_path),
        read_json_lines(spans_path),
        {},
    )


def run_flask_gateway(
    servers: ServerGroup,
    traffic: TrafficSettings,
    provider_url: str,
    output_dir: Path,
) -> GatewayRun:
    """Serve the Flask example with gunicorn, send the traffic, stop gunicorn.

    Each worker writes ``events-<pid>.jsonl`` and ``spans-<pid>.jsonl`` to
    ``output_dir``; gunicorn logs to ``gunicorn.log`` there. The Prometheus
    multiprocess directory is a new temporary directory, removed at the end.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in output_dir.iterdir():
        if _WORKER_FILE.fullmatch(path.name):
            path.unlink()
    with tempfile.TemporaryDirectory(prefix="llmobs-demo-prometheus-") as metrics:
        env = {
            "PROMETHEUS_MULTIPROC_DIR": metrics,
            "GATEWAY_PROVIDER_URL": f"{provider_url}/v1",
            "GATEWAY_PROVIDER_TIMEOUT": str(traffic.provider_timeout),
            "GATEWAY_TELEMETRY_DIR": str(output_dir),
        }
        url = _start_gunicorn(servers, env, output_dir / "gunicorn.log")
        print(f"Gateway at {url}, {FLASK_WORKERS} gunicorn workers", flush=True)
        outcomes, seconds, metrics_text = _send_traffic(traffic, url)
        # Stopped before the files are read: each worker writes its last
        # spans in gunicorn's worker_exit hook.
        servers.stop(GUNICORN_NAME)
    events_per_worker: dict[int, int] = {}
    events: list[Record] = []
    spans: list[Record] = []
    for path in sorted(output_dir.iterdir()):
        match = _WORKER_FILE.fullmatch(path.name)
        if match is None:
            continue
        records = read_json_lines(path)
        if match[1] == "events":
            events.extend(records)
            events_per_worker[int(match[2])] = len(records)
        else:
            spans.extend(records)
    return GatewayRun(
        url, outcomes, seconds, metrics_text, events, spans, events_per_worker
    )


def _start_gunicorn(servers: ServerGroup, env: dict[str, str], log_path: Path) -> str:
    """Start gunicorn on a free port and return its URL once all workers respond.

    Raises:
        DemoError: Gunicorn failed to start, or found its port taken
            ``PORT_ATTEMPTS`` times.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port(HOST)
        url = f"http://{HOST}:{port}"
        arguments = [
            *("-c", str(GUNICORN_CONFIG), "--bind", f"{HOST}:{port}"),
            *("--workers", str(FLASK_WORKERS), "--graceful-timeout", "5"),
        ]
        probe = WorkerProbe(url, FLASK_WORKERS)
        try:
            servers.start_polled(
                GUNICORN_NAME, "gunicorn", arguments, log_path, is_ready=probe, env=env
            )
        except DemoError:
            servers.stop(GUNICORN_NAME)
            port_taken = _PORT_IN_USE in log_path.read_text(encoding="utf-8")
            if not port_taken or attempt == PORT_ATTEMPTS:
                raise
            print(f"Port {port} was taken, retrying with another one", flush=True)
            continue
        return url
    raise AssertionError("unreachable: the last attempt returns or raises")


class WorkerProbe:
    """Readiness check that is true once ``workers`` distinct pids responded.

    The pids come from the ``/healthz`` response body.

    Each call sends one request on a new connection. Waiting for every
    worker, not just the first, spreads the demo traffic over all of them.
    """

    def __init__(self, url: str, workers: int) -> None:
        self.url = f"{url}/healthz"
        self.workers = workers
        self.pids: set[int] = set()

    def __call__(self) -> bool:
        """Send one probe and return whether all workers have responded."""
        try:
            response = httpx.get(self.url, timeout=1.0)
        except httpx.HTTPError:
            return False
        if response.status_code == 200:
            self.pids.add(response.json()["pid"])
        return len(self.pids) >= self.workers


def _send_traffic(
    traffic: TrafficSettings, url: str
) -> tuple[list[Outcome], float, str]:
    requests = plan_requests(traffic.requests, traffic.seed)
    started = time.monotonic()
    outcomes = asyncio.run(
        send_requests(
            url,
            requests,
            concurrency=traffic.concurrency,
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
    )
    seconds = time.monotonic() - started
    response = httpx.get(f"{url}/metrics", timeout=CLIENT_TIMEOUT_SECONDS)
    response.raise_for_status()
    return outcomes, seconds, response.text
