"""Per-request cost of middleware stacks, called in-process without a server.

ASGI apps are awaited directly with a minimal ``http`` scope and WSGI apps
called with a minimal environ, so the figures carry no socket, parser or
client cost. Every stack serves ``GET /hello`` with a plain-text body.

Run from the repository root: ``.venv/bin/python -m benchmarks.inprocess``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import io
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks._harness import (
    Case,
    Samples,
    format_number,
    markdown_table,
    measure,
    median,
    overhead_ratio,
    paired_overhead,
    paired_ratio,
    spread,
)
from benchmarks._telemetry import Telemetry, set_up_telemetry

HELLO_PATH = "/hello"
FEATURES = {"/hello": "bench.hello"}

ASGIApp = Callable[..., Any]
WSGIApp = Callable[..., Iterable[bytes]]


@dataclass(frozen=True)
class Stack:
    """One app and middleware combination.

    Attributes:
        name: Key in the results.
        label: Text for tables.
        baseline: Name of the bare stack of the same framework.
        interface: ``asgi`` or ``wsgi``.
        build: Builds the app, given the benchmark's telemetry.
        requires: Modules that must be importable, else the stack is skipped.
    """

    name: str
    label: str
    baseline: str
    interface: str
    build: Callable[[Telemetry], Any]
    requires: tuple[str, ...] = ()


# Apps ----------------------------------------------------------------------


def _starlette_app(middleware: Sequence[Any] = ()) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route(HELLO_PATH, hello)], middleware=list(middleware))


def _fastapi_app() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    options: dict[str, Any] = {"openapi_url": None, "docs_url": None, "redoc_url": None}
    if "telemetry" in inspect.signature(FastAPI).parameters:
        # FastAPI's built-in telemetry turns itself on when a global provider
        # is set; the bare and contrib stacks must not get it.
        options["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(**options)

    @app.get(HELLO_PATH, response_class=PlainTextResponse)
    async def hello() -> str:
        return "hello"

    return app


def _flask_app() -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.get(HELLO_PATH)
    def hello() -> str:
        return "hello"

    return app


def _llmobs_middleware() -> Any:
    from starlette.middleware import Middleware

    from llmobs_asgi import LLMObsMiddleware

    return Middleware(LLMObsMiddleware, features=FEATURES)


def _one_span_middleware(telemetry: Telemetry) -> Any:
    from starlette.middleware import Middleware

    from benchmarks._floor import OneSpanMiddleware

    return Middleware(OneSpanMiddleware, tracer_provider=telemetry.provider)


def _otel_asgi_middleware(telemetry: Telemetry) -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.middleware import Middleware

    return Middleware(OpenTelemetryMiddleware, tracer_provider=telemetry.provider)


def _starlette_otel_middleware(telemetry: Telemetry) -> Any:
    from starlette.middleware import Middleware
    from starlette.middleware.opentelemetry import OpenTelemetryMiddleware

    return Middleware(OpenTelemetryMiddleware, tracer_provider=telemetry.provider)


def _correlation_id_middleware() -> Any:
    from asgi_correlation_id import CorrelationIdMiddleware
    from starlette.middleware import Middleware

    return Middleware(CorrelationIdMiddleware)


def _instrument_prometheus(app: Any) -> Any:
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator(registry=CollectorRegistry()).instrument(app)
    return app


def _users_stack(telemetry: Telemetry) -> Any:
    # Outermost first: OpenTelemetry, then the correlation id, then metrics.
    app = _starlette_app(
        [_otel_asgi_middleware(telemetry), _correlation_id_middleware()]
    )
    return _instrument_prometheus(app)


def _fastapi_llmobs(telemetry: Telemetry) -> Any:
    from llmobs_asgi import LLMObsMiddleware

    app = _fastapi_app()
    app.add_middleware(LLMObsMiddleware, features=FEATURES)
    return app


def _fastapi_otel(telemetry: Telemetry) -> Any:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = _fastapi_app()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=telemetry.provider)
    return app


def _flask_llmobs(telemetry: Telemetry) -> Any:
    from llmobs_flask import LLMObs

    app = _flask_app()
    LLMObs(app, features=FEATURES)
    return app


def _flask_otel(telemetry: Telemetry) -> Any:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = _flask_app()
    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=telemetry.provider
    )
    return app


OTEL_ASGI = "opentelemetry.instrumentation.asgi"

STACKS: tuple[Stack, ...] = (
    Stack("starlette", "Starlette", "starlette", "asgi", lambda t: _starlette_app()),
    Stack(
        "starlette+llmobs",
        "Starlette + llmobs",
        "starlette",
        "asgi",
        lambda t: _starlette_app([_llmobs_middleware()]),
    ),
    Stack(
        "starlette+one-span",
        "Starlette + one SDK span, no other work (floor)",
        "starlette",
        "asgi",
        lambda t: _starlette_app([_one_span_middleware(t)]),
    ),
    Stack(
        "starlette+otel-asgi",
        "Starlette + opentelemetry-instrumentation-asgi",
        "starlette",
        "asgi",
        lambda t: _starlette_app([_otel_asgi_middleware(t)]),
        (OTEL_ASGI,),
    ),
    Stack(
        "starlette+starlette-otel",
        "Starlette + starlette.middleware.opentelemetry",
        "starlette",
        "asgi",
        lambda t: _starlette_app([_starlette_otel_middleware(t)]),
        ("starlette.middleware.opentelemetry",),
    ),
    Stack(
        "starlette+instrumentator",
        "Starlette + prometheus-fastapi-instrumentator",
        "starlette",
        "asgi",
        lambda t: _instrument_prometheus(_starlette_app()),
        ("prometheus_fastapi_instrumentator",),
    ),
    Stack(
        "starlette+correlation-id",
        "Starlette + asgi-correlation-id",
        "starlette",
        "asgi",
        lambda t: _starlette_app([_correlation_id_middleware()]),
        ("asgi_correlation_id",),
    ),
    Stack(
        "starlette+users-stack",
        "Starlette + OTel ASGI + instrumentator + correlation id",
        "starlette",
        "asgi",
        _users_stack,
        (OTEL_ASGI, "prometheus_fastapi_instrumentator", "asgi_correlation_id"),
    ),
    Stack(
        "fastapi", "FastAPI", "fastapi", "asgi", lambda t: _fastapi_app(), ("fastapi",)
    ),
    Stack(
        "fastapi+llmobs",
        "FastAPI + llmobs",
        "fastapi",
        "asgi",
        _fastapi_llmobs,
        ("fastapi",),
    ),
    Stack(
        "fastapi+otel-fastapi",
        "FastAPI + opentelemetry-instrumentation-fastapi",
        "fastapi",
        "asgi",
        _fastapi_otel,
        ("fastapi", "opentelemetry.instrumentation.fastapi"),
    ),
    Stack("flask", "Flask", "flask", "wsgi", lambda t: _flask_app(), ("flask",)),
    Stack(
        "flask+llmobs",
        "Flask + llmobs",
        "flask",
        "wsgi",
        _flask_llmobs,
        ("flask",),
    ),
    Stack(
        "flask+otel-flask",
        "Flask + opentelemetry-instrumentation-flask",
        "flask",
        "wsgi",
        _flask_otel,
        ("flask", "opentelemetry.instrumentation.flask"),
    ),
)

# Overhead comparisons reported and checked against targets:
# (name, stack, reference stack, target maximum of the overhead ratio).
COMPARISONS: tuple[tuple[str, str, str, float | None], ...] = (
    ("llmobs / OTel ASGI", "starlette+llmobs", "starlette+otel-asgi", 1 / 3),
    ("llmobs / Starlette OTel", "starlette+llmobs", "starlette+starlette-otel", 2 / 3),
    ("llmobs / OTel FastAPI", "fastapi+llmobs", "fastapi+otel-fastapi", None),
    ("llmobs / OTel Flask", "flask+llmobs", "flask+otel-flask", 1 / 2),
    ("llmobs / users' stack", "starlette+llmobs", "starlette+users-stack", None),
    ("llmobs / one span (floor)", "starlette+llmobs", "starlette+one-span", None),
)


# Drivers -------------------------------------------------------------------


def asgi_scope() -> dict[str, Any]:
    """Return a minimal ASGI 3 ``http`` scope for ``GET /hello``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": HELLO_PATH,
        "raw_path": HELLO_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def wsgi_environ() -> dict[str, Any]:
    """Return a minimal PEP 3333 environ for ``GET /hello``, without its input."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": HELLO_PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: dict[str, Any]) -> None:
    return None


def _start_response(
    status: str, headers: list[tuple[str, str]], exc_info: Any = None
) -> Callable[[bytes], None]:
    return _write


def _write(data: bytes) -> None:
    return None


class AsgiDriver:
    """Serves requests to an ASGI app one after another on one event loop."""

    def __init__(self, app: ASGIApp, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.scope = asgi_scope()

    def serve(self, requests: int) -> None:
        """Serve ``requests`` requests."""
        self.loop.run_until_complete(self._serve(requests))

    async def _serve(self, requests: int) -> None:
        app, scope = self.app, self.scope
        for _ in range(requests):
            await app(dict(scope), _receive, _discard)

    def check(self) -> tuple[int, bytes]:
        """Serve one request and return its status and body."""
        messages: list[dict[str, Any]] = []

        async def record(message: dict[str, Any]) -> None:
            messages.append(message)

        self.loop.run_until_complete(self.app(dict(self.scope), _receive, record))
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(
            m.get("body", b"") for m in messages if m["type"] == "http.response.body"
        )
        return start["status"], body


class WsgiDriver:
    """Serves requests to a WSGI app one after another, closing each body."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.environ = wsgi_environ()

    def serve(self, requests: int) -> None:
        """Serve ``requests`` requests."""
        app, environ = self.app, self.environ
        for _ in range(requests):
            body = app({**environ, "wsgi.input": io.BytesIO()}, _start_response)
            try:
                for _chunk in body:
                    pass
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    def check(self) -> tuple[int, bytes]:
        """Serve one request and return its status and body."""
        statuses: list[str] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            statuses.append(status)
            return _write

        body = self.app({**self.environ, "wsgi.input": io.BytesIO()}, start_response)
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return int(statuses[0].split(" ", 1)[0]), data


# Running -------------------------------------------------------------------


@dataclass
class StackResult:
    """Figures of one stack.

    Attributes:
        stack: The stack.
        samples: Per-request times, one per round.
        baseline: The samples of the stack's bare baseline.
        spans_per_request: Spans exported per request while timed.
    """

    stack: Stack
    samples: Samples
    baseline: Samples
    spans_per_request: float

    @property
    def wall_us(self) -> float:
        """Median wall time per request in microseconds."""
        return median(self.samples.wall_us)

    @property
    def cpu_us(self) -> float:
        """Median CPU time per request in microseconds."""
        return median(self.samples.cpu_us)

    @property
    def overhead_us(self) -> float:
        """Median per-round wall-time difference to the baseline."""
        return paired_overhead(self.samples.wall_us, self.baseline.wall_us)

    @property
    def cpu_overhead_us(self) -> float:
        """Median per-round CPU-time difference to the baseline."""
        return paired_overhead(self.samples.cpu_us, self.baseline.cpu_us)

    @property
    def ratio(self) -> float:
        """Median per-round wall-time ratio to the baseline."""
        return paired_ratio(self.samples.wall_us, self.baseline.wall_us)


@dataclass
class Comparison:
    """Overhead of one stack as a share of another's, against their baseline.

    Attributes:
        name: Text for tables.
        stack: The stack measured.
        reference: The stack compared with.
        wall: Median per-round ratio of wall-time overheads.
        cpu: Median per-round ratio of CPU-time overheads.
        target: Maximum ratio set as a target, or None.
    """

    name: str
    stack: str
    reference: str
    wall: float
    cpu: float
    target: float | None


@dataclass
class InProcessResults:
    """Results of one in-process run.

    Attributes:
        requests: Requests per stack and round.
        rounds: Number of rounds.
        stacks: Results by stack name, in table order.
        comparisons: Overhead comparisons.
        skipped: Stacks left out, with the reason.
    """

    requests: int
    rounds: int
    stacks: dict[str, StackResult]
    comparisons: list[Comparison]
    skipped: dict[str, str]


def available(stack: Stack) -> str | None:
    """Return why a stack cannot run here, or None if it can."""
    for module in stack.requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{module} is not installed (pip install -e '.[bench]')"
    return None


def _case(
    stack: Stack,
    driver: AsgiDriver | WsgiDriver,
    telemetry: Telemetry,
    spans: dict[str, list[float]],
) -> Case:
    def run(requests: int) -> None:
        exported = telemetry.exporter.count
        driver.serve(requests)
        telemetry.flush()
        spans[stack.name].append((telemetry.exporter.count - exported) / requests)

    return Case(stack.name, run)


def run_inprocess(
    *,
    requests: int,
    rounds: int,
    warmup: int,
    only: Sequence[str] | None = None,
) -> InProcessResults:
    """Build every available stack, check its response, and time them together.

    Args:
        requests: Requests per stack and round.
        rounds: Number of interleaved rounds.
        warmup: Untimed requests per stack before the first round.
        only: Names of the stacks to run (baselines are added); all if None.

    Raises:
        RuntimeError: If a stack does not return ``200 hello``.
    """
    telemetry = set_up_telemetry()
    loop = asyncio.new_event_loop()
    wanted = set(only) if only is not None else None
    if wanted is not None:
        wanted |= {s.baseline for s in STACKS if s.name in wanted}
    skipped: dict[str, str] = {}
    stacks: list[Stack] = []
    for stack in STACKS:
        if wanted is not None and stack.name not in wanted:
            continue
        reason = available(stack)
        if reason is not None:
            skipped[stack.name] = reason
            continue
        stacks.append(stack)

    spans: dict[str, list[float]] = {stack.name: [] for stack in stacks}
    cases: list[Case] = []
    try:
        for stack in stacks:
            app = stack.build(telemetry)
            driver: AsgiDriver | WsgiDriver = (
                AsgiDriver(app, loop) if stack.interface == "asgi" else WsgiDriver(app)
            )
            status, body = driver.check()
            if status != 200 or body != b"hello":
                raise RuntimeError(
                    f"stack {stack.name} returned {status} {body[:80]!r}, "
                    "expected 200 b'hello'"
                )
            cases.append(_case(stack, driver, telemetry, spans))
        samples = measure(cases, operations=requests, rounds=rounds, warmup=warmup)
    finally:
        loop.close()

    results = {
        stack.name: StackResult(
            stack=stack,
            samples=samples[stack.name],
            baseline=samples[stack.baseline],
            spans_per_request=median(spans[stack.name][-rounds:]),
        )
        for stack in stacks
    }
    comparisons = [
        Comparison(
            name=name,
            stack=stack,
            reference=reference,
            wall=overhead_ratio(
                results[stack].samples.wall_us,
                results[reference].samples.wall_us,
                results[stack].baseline.wall_us,
            ),
            cpu=overhead_ratio(
                results[stack].samples.cpu_us,
                results[reference].samples.cpu_us,
                results[stack].baseline.cpu_us,
            ),
            target=target,
        )
        for name, stack, reference, target in COMPARISONS
        if stack in results and reference in results
    ]
    return InProcessResults(requests, rounds, results, comparisons, skipped)


def stacks_table(results: InProcessResults) -> str:
    """Format the per-stack figures as a Markdown table, CPU time first."""
    rows = []
    for result in results.stacks.values():
        bare = result.stack.name == result.stack.baseline
        rows.append(
            [
                result.stack.label,
                format_number(result.cpu_us),
                "" if bare else format_number(result.cpu_overhead_us),
                format_number(result.wall_us),
                "" if bare else format_number(result.overhead_us),
                "" if bare else f"{result.ratio:.2f}x",
                f"{spread(result.samples.cpu_us) * 100:.0f}%",
                format_number(result.spans_per_request, 0),
            ]
        )
    headers = [
        "stack",
        "CPU µs/request",
        "CPU overhead µs",
        "wall µs/request",
        "wall overhead µs",
        "wall vs bare",
        "CPU spread",
        "spans/request",
    ]
    return markdown_table(headers, rows)


def comparisons_table(results: InProcessResults) -> str:
    """Format the overhead comparisons as a Markdown table; CPU time decides."""
    rows = []
    for comparison in results.comparisons:
        target = "" if comparison.target is None else f"<= {comparison.target:.2f}"
        rows.append(
            [
                comparison.name,
                f"{comparison.cpu:.2f}",
                f"{comparison.wall:.2f}",
                target,
                verdict(comparison.cpu, maximum=comparison.target),
            ]
        )
    headers = ["overhead ratio", "CPU", "wall", "target", "met"]
    return markdown_table(headers, rows)


def verdict(value: float, *, maximum: float | None) -> str:
    """Return ``yes`` or ``no`` for a target maximum, empty without one."""
    if maximum is None:
        return ""
    return "yes" if value <= maximum else "no"


def render(results: InProcessResults) -> str:
    """Format the in-process results as Markdown."""
    parts = [
        f"Median of {results.rounds} interleaved rounds of {results.requests:,} "
        "requests per stack. Overheads and ratios are per-round differences and "
        "ratios against the bare app of the same round; CPU spread is (max - "
        "min) / median of the rounds' CPU times.",
        "",
        stacks_table(results),
        "",
        comparisons_table(results),
    ]
    for name, reason in results.skipped.items():
        parts.append(f"\nSkipped {name}: {reason}.")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the in-process benchmark and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=4000, help="per stack and round"
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=500, help="untimed requests")
    parser.add_argument(
        "--only", nargs="+", metavar="STACK", help="stack names to run (default: all)"
    )
    args = parser.parse_args(argv)
    results = run_inprocess(
        requests=args.requests, rounds=args.rounds, warmup=args.warmup, only=args.only
    )
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
