"""Run the example gateways against the fake provider and show what llmobs records.

Run it from the repository root with ``python -m examples.demo``. It starts the
fake provider as a subprocess on a free loopback port, then each gateway in
turn: the FastAPI example under uvicorn, then the Flask example under gunicorn
with two worker processes (``--gateway`` picks one). To each gateway it sends
a mix of requests (several tenants and tiers, both features, streaming, cache
hits, provider failures, ``traceparent`` headers) and prints:

1. a table per feature computed from the JSON call events,
2. the ``llm_*`` samples of the gateway's ``/metrics`` (under gunicorn, one
   scrape sums the samples of both workers),
3. the span tree of one request that ran all four stages.

The events, spans and server logs are kept in an output directory, whose path
is printed first; the Flask gateway's are in its ``flask`` subdirectory. The
exit status is 1 if a server failed to start or the responses, events, spans
and metrics disagree, and 130 after Ctrl-C or SIGTERM. The servers are stopped
in every case.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from examples._demo.checks import (
    check_events,
    check_metrics,
    check_responses,
    check_spans,
    traffic_summary,
)
from examples._demo.processes import DemoError, ServerGroup
from examples._demo.report import (
    feature_table,
    llm_metric_lines,
    metric_total,
    pick_request_trace,
    span_tree,
    worker_summary,
)
from examples._demo.runs import (
    FLASK_WORKERS,
    GatewayRun,
    TrafficSettings,
    run_fastapi_gateway,
    run_flask_gateway,
)
from llmobs_core.cli import main as cli_main

REPO_ROOT = Path(__file__).resolve().parent.parent

SECTION_FEATURES = "Calls per feature (from the JSON call events)"
SECTION_METRICS = "Prometheus llm_* samples (GET /metrics)"
SECTION_SPANS = "Span tree of one request"
SECTION_HEADERS = (SECTION_FEATURES, SECTION_METRICS, SECTION_SPANS)
# Printed once, after all gateways, so not one of SECTION_HEADERS.
SECTION_CLI_REPORT = "llmobs report of the FastAPI gateway's events file"

GATEWAY_TITLES = {
    "fastapi": "FastAPI gateway, uvicorn, one process",
    "flask": f"Flask gateway, gunicorn, {FLASK_WORKERS} worker processes",
}
GATEWAY_CHOICES = ("all", *GATEWAY_TITLES)

# The fake provider's "slow" behaviour responds after SLOW_SECONDS, which is
# above the gateway's provider timeout, so those requests end with a 504.
# Normal responses take at most about 1.5 s at latency scale 1 (fake provider
# defaults, with the gateway's 80-token output limit), below the timeout.
PROVIDER_TIMEOUT_SECONDS = 2.0
SLOW_SECONDS = 3.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and return the process exit status."""
    args = _build_parser().parse_args(argv)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="llmobs-demo-"))
    output_dir.mkdir(parents=True, exist_ok=True)
    print(f"Output directory: {output_dir}", flush=True)
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
    """Start the fake provider, then run and report each chosen gateway."""
    gateways = list(GATEWAY_TITLES) if args.gateway == "all" else [args.gateway]
    problems: list[str] = []
    with ServerGroup(REPO_ROOT, startup_timeout=args.startup_timeout) as servers:
        provider_url = servers.start(
            "fake provider",
            "examples.fake_provider",
            _provider_arguments(args),
            output_dir / "fake_provider.log",
        )
        print(f"Fake provider at {provider_url}", flush=True)
        for gateway in gateways:
            print(f"\n=== {GATEWAY_TITLES[gateway]} ===", flush=True)
            if gateway == "fastapi":
                traffic = _traffic(args, args.requests)
                run = run_fastapi_gateway(servers, traffic, provider_url, output_dir)
            else:
                traffic = _traffic(args, args.flask_requests)
                flask_dir = output_dir / "flask"
                run = run_flask_gateway(servers, traffic, provider_url, flask_dir)
            problems.extend(f"{gateway}: {p}" for p in _report(run))
    if "fastapi" in gateways:
        problems.extend(_print_cli_report(output_dir / "events.jsonl"))
    return problems


def _print_cli_report(events_path: Path) -> list[str]:
    """Print ``llmobs report`` of the events file; return a problem if it failed."""
    argv = ["report", str(events_path), "--by", "feature_name", "--by", "model"]
    _print_section(SECTION_CLI_REPORT, f"$ llmobs {' '.join(argv)}")
    status = cli_main(argv)
    sys.stdout.flush()
    return [] if status == 0 else [f"llmobs report exited with status {status}"]


def _traffic(args: argparse.Namespace, requests: int) -> TrafficSettings:
    return TrafficSettings(
        requests=requests,
        concurrency=args.concurrency,
        seed=args.seed,
        provider_timeout=PROVIDER_TIMEOUT_SECONDS,
    )


def _report(run: GatewayRun) -> list[str]:
    """Print the three sections for one gateway and return its problems."""
    print(traffic_summary(run.outcomes, run.seconds))
    requests_total = metric_total(run.metrics_text, "llm_requests_total")
    if run.events_per_worker:
        print(worker_summary(run.events_per_worker, requests_total))
    events = run.events
    _print_section(SECTION_FEATURES, feature_table(events) if events else "(none)")
    metric_lines = llm_metric_lines(run.metrics_text)
    _print_section(SECTION_METRICS, "\n".join(metric_lines) or "(none)")
    trace = pick_request_trace(run.spans)
    _print_section(SECTION_SPANS, span_tree(trace) if trace else "(none)")
    problems = [
        *check_responses(run.outcomes),
        *check_events(run.outcomes, events),
        *check_spans(run.outcomes, run.spans),
        *check_metrics(events, requests_total),
    ]
    if trace is None:
        problems.append("no request in the span files ran all four stages")
    return problems


def _provider_arguments(args: argparse.Namespace) -> list[str]:
    return [
        *("--host", "127.0.0.1", "--port", "0"),
        *("--latency-scale", str(args.latency_scale), "--seed", str(args.seed)),
        *("--slow-seconds", str(SLOW_SECONDS), "--log-level", "warning"),
    ]


def _print_section(title: str, body: str) -> None:
    print(f"\n== {title} ==\n{body}", flush=True)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo",
        description="Send mixed traffic through the example gateways and print "
        "the call events, metrics and spans that llmobs recorded.",
    )
    parser.add_argument(
        "--gateway",
        choices=GATEWAY_CHOICES,
        default="all",
        help="gateway to run: the FastAPI one, the Flask one under gunicorn, "
        "or both in turn (default: %(default)s)",
    )
    parser.add_argument(
        "--requests",
        type=_positive_int,
        default=300,
        help="number of requests to send to the FastAPI gateway (default: %(default)s)",
    )
    parser.add_argument(
        "--flask-requests",
        type=_positive_int,
        default=120,
        help="number of requests to send to the Flask gateway (default: %(default)s)",
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
