"""Run the example gateway against the fake provider and show what llmobs records.

Run it from the repository root with ``python -m examples.demo``. It starts the
fake provider and the gateway as subprocesses on free loopback ports, sends a
mix of requests (several tenants and tiers, both features, streaming, cache
hits, provider failures, ``traceparent`` headers) and prints:

1. a table per feature computed from the JSON call events,
2. the ``llm_*`` samples of the gateway's ``/metrics``,
3. the span tree of one request that ran all four stages.

The events, spans and server logs are kept in an output directory, whose path
is printed first. The exit status is 1 if a server failed to start or the
responses, events and spans disagree, and 130 after Ctrl-C or SIGTERM. The
servers are stopped in every case.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from examples._demo.checks import (
    check_events,
    check_responses,
    check_spans,
    traffic_summary,
)
from examples._demo.processes import DemoError, ServerGroup
from examples._demo.report import (
    feature_table,
    llm_metric_lines,
    pick_request_trace,
    read_json_lines,
    span_tree,
)
from examples._demo.traffic import Outcome, plan_requests, send_requests

REPO_ROOT = Path(__file__).resolve().parent.parent

SECTION_FEATURES = "Calls per feature (from the JSON call events)"
SECTION_METRICS = "Prometheus llm_* samples (GET /metrics)"
SECTION_SPANS = "Span tree of one request"
SECTION_HEADERS = (SECTION_FEATURES, SECTION_METRICS, SECTION_SPANS)

# The fake provider's "slow" behaviour responds after SLOW_SECONDS, which is
# above the gateway's provider timeout, so those requests end with a 504.
# Normal responses take at most about 1.5 s at latency scale 1 (fake provider
# defaults, with the gateway's 80-token output limit), below the timeout.
PROVIDER_TIMEOUT_SECONDS = 2.0
SLOW_SECONDS = 3.0
CLIENT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything the demo collected while the servers were running."""

    outcomes: list[Outcome]
    seconds: float
    metrics_text: str


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and return the process exit status."""
    args = _build_parser().parse_args(argv)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="llmobs-demo-"))
    output_dir.mkdir(parents=True, exist_ok=True)
    print(f"Output directory: {output_dir}\n", flush=True)
    try:
        problems = _run(args, output_dir)
    except DemoError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted, servers stopped", file=sys.stderr)
        return 130
    print(f"\nFinished in {time.monotonic() - started:.1f} s.")
    for problem in problems:
        print(f"demo check failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace, output_dir: Path) -> list[str]:
    events_path = output_dir / "events.jsonl"
    spans_path = output_dir / "spans.jsonl"
    for path in (events_path, spans_path):
        path.unlink(missing_ok=True)
    result = _serve_and_send(args, output_dir, events_path, spans_path)
    print(traffic_summary(result.outcomes, result.seconds))
    events = read_json_lines(events_path)
    spans = read_json_lines(spans_path)
    _print_section(SECTION_FEATURES, feature_table(events) if events else "(none)")
    metric_lines = llm_metric_lines(result.metrics_text)
    _print_section(SECTION_METRICS, "\n".join(metric_lines) or "(none)")
    trace = pick_request_trace(spans)
    _print_section(SECTION_SPANS, span_tree(trace) if trace else "(none)")
    problems = [
        *check_responses(result.outcomes),
        *check_events(result.outcomes, events),
        *check_spans(result.outcomes, spans),
    ]
    if trace is None:
        problems.append(f"no request in {spans_path} ran all four stages")
    return problems


def _serve_and_send(
    args: argparse.Namespace, output_dir: Path, events_path: Path, spans_path: Path
) -> RunResult:
    """Start both servers, send the traffic, read /metrics, stop the servers.

    The gateway is stopped before this returns, so its last spans are written.
    """
    with ServerGroup(REPO_ROOT, startup_timeout=args.startup_timeout) as servers:
        provider_url = servers.start(
            "fake provider",
            "examples.fake_provider",
            _provider_arguments(args),
            output_dir / "fake_provider.log",
        )
        gateway_arguments = [
            *("--provider-url", f"{provider_url}/v1", "--host", "127.0.0.1"),
            *("--port", "0", "--provider-timeout", str(PROVIDER_TIMEOUT_SECONDS)),
            *("--events-file", str(events_path), "--spans-file", str(spans_path)),
        ]
        gateway_url = servers.start(
            "gateway",
            "examples.fastapi_gateway",
            gateway_arguments,
            output_dir / "gateway.log",
        )
        print(f"Fake provider at {provider_url}, gateway at {gateway_url}", flush=True)
        result = _send_traffic(args, gateway_url)
    return result


def _provider_arguments(args: argparse.Namespace) -> list[str]:
    return [
        *("--host", "127.0.0.1", "--port", "0"),
        *("--latency-scale", str(args.latency_scale), "--seed", str(args.seed)),
        *("--slow-seconds", str(SLOW_SECONDS), "--log-level", "warning"),
    ]


def _send_traffic(args: argparse.Namespace, gateway_url: str) -> RunResult:
    requests = plan_requests(args.requests, args.seed)
    started = time.monotonic()
    outcomes = asyncio.run(
        send_requests(
            gateway_url,
            requests,
            concurrency=args.concurrency,
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
    )
    seconds = time.monotonic() - started
    response = httpx.get(f"{gateway_url}/metrics", timeout=CLIENT_TIMEOUT_SECONDS)
    response.raise_for_status()
    return RunResult(outcomes, seconds, response.text)


def _print_section(title: str, body: str) -> None:
    print(f"\n== {title} ==\n{body}", flush=True)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo",
        description="Send mixed traffic through the example gateway and print "
        "the call events, metrics and spans that llmobs recorded.",
    )
    parser.add_argument(
        "--requests",
        type=_positive_int,
        default=300,
        help="number of requests to send (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        help="maximum number of requests in flight (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-scale",
        type=_latency_scale,
        default=0.3,
        help="factor from 0 to 1 for the fake provider's simulated latency "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the traffic plan and the fake provider (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="directory for events, spans and server logs "
        "(default: a new temporary directory)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for each server to start (default: %(default)s)",
    )
    return parser


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return number


def _latency_scale(value: str) -> float:
    try:
        scale = float(value)
    except ValueError:
        scale = -1.0
    # Above 1, the slowest normal responses approach PROVIDER_TIMEOUT_SECONDS.
    if not 0.0 <= scale <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number from 0 to 1")
    return scale


if __name__ == "__main__":
    sys.exit(main())
