"""The example gateways export their spans over OTLP/HTTP to a local receiver.

The FastAPI gateway runs as ``python -m examples.fastapi_gateway`` and the
Flask gateway under gunicorn with two workers, each a subprocess configured
only by the standard ``OTEL_*`` environment variables. The OTLP receiver
(``tests._otlp``) and the fake provider run in this process. Every server
listens on 127.0.0.1 and is stopped by PID at the end of its test.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.fake_provider.app import FakeProviderConfig
from examples.fake_provider.app import create_app as create_fake_provider
from tests._otlp import OTLPReceiver, ReceivedSpan, run_otlp_receiver
from tests._servers import LOOPBACK_HOST, run_uvicorn_in_thread
from tests.flask.test_gunicorn import free_port, stop_gunicorn, wait_for_workers

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = REPO_ROOT / "examples" / "flask_gateway" / "gunicorn.conf.py"
GUNICORN_WORKERS = 2
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
CLIENT_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 3

CHAT_PATH = "/api/chat/assistant"
NUTRITION_PATH = "/api/nutrition/coach"
# Feature name and model of each route of both example gateways.
FEATURES = {
    CHAT_PATH: ("chat.assistant", "gpt-4o-mini"),
    NUTRITION_PATH: ("nutrition.coach", "gpt-4.1-mini"),
}
STAGES = ("build_prompt", "retrieve_context", "call_llm", "postprocess")

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"
SERVICE_NAME = "otlp-test-gateway"
OTLP_TEST_HEADER = "x-otlp-test-token"

# Export as soon as possible, in milliseconds.
SHORT_SCHEDULE_DELAY = "100"
# Longer than any test, so that spans arrive only through the flush at exit.
LONG_SCHEDULE_DELAY = "600000"


@dataclass(frozen=True)
class SentRequest:
    """A request sent to a gateway and the response's request id."""

    path: str
    request_id: str
    traceparent: str | None


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    config = FakeProviderConfig(latency_scale=0)
    with run_uvicorn_in_thread(create_fake_provider(config)) as url:
        yield f"{url}/v1"


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with run_otlp_receiver() as otlp_receiver:
        yield otlp_receiver


def gateway_environment(otel: Mapping[str, str]) -> dict[str, str]:
    """Return this process's environment without OTEL settings, plus ``otel``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OTEL_")
        and name not in ("FASTAPI_OTEL_AUTO_CONFIGURE", "PROMETHEUS_MULTIPROC_DIR")
    }
    return {**inherited, "PYTHONPATH": str(REPO_ROOT), **otel}


@contextlib.contextmanager
def run_fastapi_gateway(
    tmp_path: Path, provider_url: str, otel: Mapping[str, str]
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``python -m examples.fastapi_gateway``; yield its URL and process."""
    log_path = tmp_path / "gateway.log"
    command = [
        *(sys.executable, "-m", "examples.fastapi_gateway"),
        *("--provider-url", provider_url, "--host", LOOPBACK_HOST, "--port", "0"),
        *("--events-file", str(tmp_path / "events.jsonl")),
        *("--spans-file", str(tmp_path / "spans.jsonl")),
    ]
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=gateway_environment(otel),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        yield read_listening_url(process, log_path), process
    finally:
        stop_process(process)
        assert process.stdout is not None
        process.stdout.close()


def read_listening_url(process: subprocess.Popen[str], log_path: Path) -> str:
    """Return the URL of the gateway's ``LISTENING <url>`` line."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log = log_path.read_text(encoding="utf-8")
            raise RuntimeError(f"gateway did not start in time:\n{log}")
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if not readable:
            continue
        line = process.stdout.readline()
        if not line:
            process.wait(STOP_TIMEOUT_SECONDS)
            log = log_path.read_text(encoding="utf-8")
            raise RuntimeError(f"gateway exited with {process.returncode}:\n{log}")
        if line.startswith("LISTENING "):
            return line.removeprefix("LISTENING ").strip()


def stop_process(process: subprocess.Popen[str]) -> None:
    """Send SIGTERM, wait, and SIGKILL the process if it is still running."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def send_requests(url: str, *, copies: int = 1) -> list[SentRequest]:
    """Send ``copies`` rounds of three requests, each on a new connection.

    Each round has a chat request with a ``traceparent``, a nutrition request
    and a streamed chat request, all without ``X-Request-ID``, so the gateway
    makes each request id.
    """
    plans: list[tuple[str, dict[str, Any], str | None]] = []
    for index in range(copies):
        plans += [
            (CHAT_PATH, {"message": f"How do I export report {index}?"}, TRACEPARENT),
            (NUTRITION_PATH, {"message": f"Is fruit {index} healthy?"}, None),
            (CHAT_PATH, {"message": f"Share dashboard {index}?", "stream": True}, None),
        ]
    limits = httpx.Limits(max_keepalive_connections=0)
    with (
        httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_SECONDS, limits=limits) as c,
        ThreadPoolExecutor(max_workers=4) as executor,
    ):

        def send(plan: tuple[str, dict[str, Any], str | None]) -> SentRequest:
            path, body, traceparent = plan
            headers = {"x-tenant-id": "acme"}
            if traceparent is not None:
                headers["traceparent"] = traceparent
            response = c.post(path, json=body, headers=headers)
            assert response.status_code == 200, response.text
            return SentRequest(path, response.headers["x-request-id"], traceparent)

        return list(executor.map(send, plans))


def server_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.kind == "SERVER"]


def is_descendant(
    span: ReceivedSpan, ancestor: ReceivedSpan, by_id: dict[str, ReceivedSpan]
) -> bool:
    parent_id = span.parent_span_id
    while parent_id is not None:
        if parent_id == ancestor.span_id:
            return True
        parent = by_id.get(parent_id)
        parent_id = parent.parent_span_id if parent is not None else None
    return False


def read_span_ids(paths: list[Path]) -> set[str]:
    ids: set[str] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            ids.add(json.loads(line)["span_id"])
    return ids


def check_span_trees(spans: list[ReceivedSpan], sent: list[SentRequest]) -> None:
    """Check the span tree of every sent request, as received over OTLP."""
    by_id = {span.span_id: span for span in spans}
    assert len(by_id) == len(spans), "a span was received twice"
    servers = server_spans(spans)
    # One SERVER span per request: no second one from the framework's own
    # instrumentation.
    assert len(servers) == len(sent), [span.name for span in servers]
    servers_by_request = {
        span.attributes["llmobs.request_id"]: span for span in servers
    }
    assert set(servers_by_request) == {request.request_id for request in sent}
    for request in sent:
        server = servers_by_request[request.request_id]
        assert server.attributes["http.route"] == request.path
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["llmobs.tenant_id"] == "acme"
        if request.traceparent is None:
            assert server.parent_span_id is None
            assert server.trace_id != CALLER_TRACE_ID
        else:
            assert server.trace_id == CALLER_TRACE_ID
            assert server.parent_span_id == CALLER_SPAN_ID
        trace = [span for span in spans if span.trace_id == server.trace_id]
        if request.traceparent is None:
            assert server_spans(trace) == [server]
        for stage in STAGES:
            matches = [
                span
                for span in trace
                if span.name == stage and is_descendant(span, server, by_id)
            ]
            assert len(matches) == 1, f"{stage} of {request}: {matches}"
        (call,) = [
            span
            for span in trace
            if span.name == "call_llm" and is_descendant(span, server, by_id)
        ]
        check_call_span(call, request)


def check_call_span(call: ReceivedSpan, request: SentRequest) -> None:
    feature, model = FEATURES[request.path]
    assert call.kind == "CLIENT"
    assert call.attributes["llm.model"] == model
    assert call.attributes["llm.feature_name"] == feature
    assert call.attributes["llm.status"] == "ok"
    assert call.attributes["gen_ai.request.model"] == model
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.usage.input_tokens"] > 0
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert call.attributes["llmobs.request_id"] == request.request_id


def test_fastapi_gateway_exports_span_tree(
    receiver: OTLPReceiver, provider_url: str, tmp_path: Path
) -> None:
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"{OTLP_TEST_HEADER}=abc123",
        "OTEL_SERVICE_NAME": SERVICE_NAME,
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,"
        "service.name=overridden",
        "OTEL_BSP_SCHEDULE_DELAY": SHORT_SCHEDULE_DELAY,
    }
    with run_fastapi_gateway(tmp_path, provider_url, otel) as (url, process):
        sent = send_requests(url)
        # Exported while the gateway runs, not only when it stops.
        live = receiver.wait_for_spans(
            lambda spans: len(server_spans(spans)) == len(sent)
        )
        stop_process(process)

    assert process.returncode == -signal.SIGTERM
    spans = receiver.spans
    assert len(spans) == len(live)
    check_span_trees(spans, sent)
    for server in server_spans(spans):
        assert server.name == f"POST {server.attributes['http.route']}"
        assert server.scope == "llmobs"
    for span in spans:
        assert span.resource["service.name"] == SERVICE_NAME
        assert span.resource["deployment.environment.name"] == "test"
    for export in receiver.exports:
        assert export.headers[OTLP_TEST_HEADER] == "abc123"
        assert export.headers["content-type"] == "application/x-protobuf"
    # The JSON lines file receives the same spans as the OTLP endpoint.
    file_ids = read_span_ids([tmp_path / "spans.jsonl"])
    assert file_ids == {span.span_id for span in spans}


def test_fastapi_gateway_flushes_on_sigterm(
    receiver: OTLPReceiver, provider_url: str, tmp_path: Path
) -> None:
    otel = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_BSP_SCHEDULE_DELAY": LONG_SCHEDULE_DELAY,
    }
    with run_fastapi_gateway(tmp_path, provider_url, otel) as (url, process):
        sent = send_requests(url)
        assert receiver.spans == []
        stop_process(process)

    assert process.returncode == -signal.SIGTERM
    # The gateway exports before it exits, and the receiver stores the spans
    # before it responds, so they are all here once the process has ended.
    spans = receiver.spans
    check_span_trees(spans, sent)
    for span in spans:
        assert span.resource["service.name"] == "llmobs-example-gateway"
    assert receiver.exports
    for export in receiver.exports:
        assert export.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://192.0.2.1:4318",
            "is not on a loopback address",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector.example:4318/v1/traces",
            "is not an http(s) URL with an IP address",
        ),
    ],
)
def test_fastapi_gateway_rejects_remote_endpoint(
    variable: str, value: str, message: str
) -> None:
    command = [
        *(sys.executable, "-m", "examples.fastapi_gateway"),
        *("--provider-url", "http://127.0.0.1:9/v1", "--port", "0"),
    ]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=gateway_environment({variable: value}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
        check=False,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{variable}={value!r} {message}" in result.stderr


@dataclass
class Gunicorn:
    """A running gunicorn master serving the Flask gateway."""

    url: str
    process: subprocess.Popen[bytes]
    telemetry_dir: Path


@contextlib.contextmanager
def run_gunicorn(
    tmp_path: Path, provider_url: str, otel: Mapping[str, str]
) -> Iterator[Gunicorn]:
    """Run the Flask gateway under gunicorn with two workers on a free port."""
    telemetry_dir = tmp_path / "telemetry"
    log_path = tmp_path / "gunicorn.log"
    env = {
        **gateway_environment(otel),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GATEWAY_PROVIDER_URL": provider_url,
        "GATEWAY_TELEMETRY_DIR": str(telemetry_dir),
    }
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        command = [
            *(sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)),
            *("--bind", f"{LOOPBACK_HOST}:{port}"),
            *("--workers", str(GUNICORN_WORKERS), "--graceful-timeout", "5"),
        ]
        with log_path.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        url = f"http://{LOOPBACK_HOST}:{port}"
        try:
            wait_for_workers(url, process, log_path, set(), GUNICORN_WORKERS)
        except RuntimeError:
            stop_gunicorn(process)
            # Another process can take the free port before gunicorn binds it.
            port_taken = "Connection in use" in log_path.read_text(encoding="utf-8")
            if port_taken and attempt < PORT_ATTEMPTS:
                continue
            raise
        break
    try:
        yield Gunicorn(url, process, telemetry_dir)
    finally:
        stop_gunicorn(process)


def events_per_worker(telemetry_dir: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in telemetry_dir.glob("events-*.jsonl"):
        counts[path.name] = len(path.read_text(encoding="utf-8").splitlines())
    return counts


def test_flask_gunicorn_exports_span_tree(
    receiver: OTLPReceiver, provider_url: str, tmp_path: Path
) -> None:
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": SERVICE_NAME,
        "OTEL_BSP_SCHEDULE_DELAY": LONG_SCHEDULE_DELAY,
    }
    with run_gunicorn(tmp_path, provider_url, otel) as gunicorn:
        sent: list[SentRequest] = []
        # New connections spread the requests over the workers; send rounds
        # until both have served one, so that both must flush at exit.
        for _ in range(10):
            sent += send_requests(gunicorn.url, copies=2)
            if len(events_per_worker(gunicorn.telemetry_dir)) == GUNICORN_WORKERS:
                break
        assert len(events_per_worker(gunicorn.telemetry_dir)) == GUNICORN_WORKERS
        assert receiver.spans == []
        # Each worker exports in gunicorn's worker_exit hook. The SDK's atexit
        # handler would also flush a provider that the hook left open.
        stop_gunicorn(gunicorn.process)

    assert gunicorn.process.returncode == 0
    spans = receiver.spans
    check_span_trees(spans, sent)
    instances = {span.resource["service.instance.id"] for span in spans}
    assert len(instances) == GUNICORN_WORKERS
    for span in spans:
        assert span.resource["service.name"] == SERVICE_NAME
    span_files = sorted(gunicorn.telemetry_dir.glob("spans-*.jsonl"))
    assert len(span_files) == GUNICORN_WORKERS
    assert read_span_ids(span_files) == {span.span_id for span in spans}


def test_gunicorn_rejects_remote_endpoint(provider_url: str, tmp_path: Path) -> None:
    value = "http://192.0.2.1:4318"
    env = {
        **gateway_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": value}),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GATEWAY_PROVIDER_URL": provider_url,
    }
    command = [
        *(sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)),
        *("--bind", f"{LOOPBACK_HOST}:{free_port()}"),
    ]
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        process.wait(START_TIMEOUT_SECONDS)
    finally:
        # Stops gunicorn and its workers if the check let it start.
        stop_gunicorn(process)

    assert process.returncode != 0
    log_text = log_path.read_text(encoding="utf-8")
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT={value!r} is not on a loopback" in log_text
