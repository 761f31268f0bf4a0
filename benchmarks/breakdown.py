"""Where llmobs spends its time: variants that leave one part out at a time.

Per call: the per-call benchmark's ``call_llm`` with each default emitter
left out in turn, the JSON emitter on the caller's thread, and no prompt to
hash; next to the per-call floor, and to the floor plus the work llmobs adds
per call (prompt hash, 16 more span attributes, 5 more metric updates) done
by hand with the same libraries. Per request: a plain ASGI app that sends
``200 hello`` itself, alone and wrapped in ``LLMObsMiddleware``, in
Starlette's OpenTelemetry middleware, or in a minimal middleware that only
starts and ends one SDK span. The last
request variant calls ``ServerRequest`` start, finish and close without any
ASGI code.

Figures are CPU time, medians of interleaved rounds, with the same harness
as the other benchmarks. Run from the repository root:
``.venv/bin/python -m benchmarks.breakdown``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import Receive, Scope, Send

import llmobs_core as llmobs
from benchmarks._floor import OneSpanMiddleware
from benchmarks._harness import (
    Case,
    Samples,
    format_number,
    markdown_table,
    measure,
    median,
    paired_overhead,
)
from benchmarks._telemetry import HASH_KEY, Telemetry, set_up_telemetry
from benchmarks.inprocess import FEATURES, HELLO_PATH, AsgiDriver
from benchmarks.per_call import (
    FEATURE,
    MESSAGES,
    MODEL,
    FloorVariant,
    LLMObsVariant,
    chat_completion,
)
from llmobs_core.emitters import (
    Emitter,
    JsonLogEmitter,
    OTelSpanEmitter,
    PrometheusEmitter,
)
from llmobs_core.emitters.otel import call_attributes
from llmobs_core.schema import LLMCallLog
from llmobs_core.server import ServerRequest, ServerSettings


def _emitter_sets(telemetry: Telemetry) -> dict[str, list[Emitter]]:
    prometheus = PrometheusEmitter(telemetry.registry)
    background = JsonLogEmitter()
    inline = JsonLogEmitter(background=False)
    otel = OTelSpanEmitter()
    return {
        "all default emitters": [background, prometheus, otel],
        "without the JSON log emitter": [prometheus, otel],
        "JSON log emitter on the caller's thread": [inline, prometheus, otel],
        "without the Prometheus emitter": [background, otel],
        "without the OTel span emitter": [background, prometheus],
        "no emitters": [],
    }


class EqualWorkFloor(FloorVariant):
    """The floor plus, by hand, the per-call work of llmobs that it leaves out.

    That is the keyed hash of the prompt, 26 span attribute writes instead
    of 10, and 9 metric updates instead of 4. The extra updates are the
    in-flight gauge up and down, the cost counter, the stage histogram and
    an exemplar on the latency histogram. The usage is still read by plain
    attribute access, and the cost is copied from the llmobs event.
    """

    def __init__(
        self, telemetry: Telemetry, completion: Any, event: dict[str, Any]
    ) -> None:
        super().__init__(telemetry, completion, event)
        registry = CollectorRegistry()
        self.in_flight = Gauge(
            "floor_in_flight",
            "Calls in flight.",
            ("feature_name", "model"),
            registry=registry,
        )
        self.cost = Counter(
            "floor_cost",
            "Cost.",
            ("feature_name", "model", "tenant_tier"),
            registry=registry,
        )
        self.stage = Histogram(
            "floor_stage_ms",
            "Stage duration.",
            ("feature_name", "stage"),
            registry=registry,
        )
        self.attributes = call_attributes(LLMCallLog.model_validate(event))
        self.key = HASH_KEY.encode()
        self.tier = event["tenant_tier"]

    def _call(self) -> None:
        completion = self.completion
        started = time.perf_counter_ns()
        self.in_flight.labels(FEATURE, MODEL).inc()
        canonical = json.dumps(
            MESSAGES, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        prompt_hash = hmac.new(self.key, canonical.encode(), hashlib.sha256).hexdigest()
        with self.tracer.start_as_current_span(
            "call_llm",
            kind=SpanKind.CLIENT,
            attributes={"llm.stage": "call_llm", "llm.feature_name": FEATURE},
        ) as span:
            usage = completion.usage
            choice = completion.choices[0]
            latency_ms = (time.perf_counter_ns() - started) / 1e6
            span.set_attributes(self.attributes)
            context = span.get_span_context()
            trace_id = f"{context.trace_id:032x}"
            self.in_flight.labels(FEATURE, MODEL).dec()
            self.requests.labels(FEATURE, MODEL, self.region, "ok").inc()
            self.input_tokens.labels(FEATURE, MODEL).inc(usage.prompt_tokens)
            self.output_tokens.labels(FEATURE, MODEL).inc(usage.completion_tokens)
            self.cost.labels(FEATURE, MODEL, self.tier).inc(self.template["cost_usd"])
            self.latency.labels(FEATURE, MODEL, self.region).observe(
                latency_ms, exemplar={"trace_id": trace_id}
            )
            self.stage.labels(FEATURE, "call_llm").observe(latency_ms)
            event = LLMCallLog(
                **{**self.template, "prompt_hash": prompt_hash},
                timestamp=datetime.now(UTC),
                trace_id=trace_id,
                span_id=f"{context.span_id:016x}",
                latency_ms=latency_ms,
                response_model=completion.model,
                input_tokens=usage.prompt_tokens,
                cached_input_tokens=usage.prompt_tokens_details.cached_tokens,
                output_tokens=usage.completion_tokens,
                reasoning_tokens=usage.completion_tokens_details.reasoning_tokens,
                finish_reason=choice.finish_reason,
            )
            self.logger.info("%s", event.model_dump_json())


def run_call_breakdown(*, calls: int, rounds: int, warmup: int) -> dict[str, Samples]:
    """Time ``call_llm`` with parts left out, and the floor, interleaved."""
    telemetry = set_up_telemetry()
    completion = chat_completion()
    with_prompt = LLMObsVariant(telemetry, completion)
    floor = FloorVariant(telemetry, completion, with_prompt.sample_event())
    cases: list[Case] = []
    for name, emitters in _emitter_sets(telemetry).items():
        cases.append(
            Case(name, with_prompt.run, prepare=_configure(telemetry, emitters))
        )
    defaults = _emitter_sets(telemetry)["all default emitters"]
    without_prompt = LLMObsVariant(telemetry, completion, prompt=None)
    cases.append(
        Case(
            "all default emitters, no prompt to hash",
            without_prompt.run,
            prepare=_configure(telemetry, defaults),
        )
    )
    cases.append(Case("floor", floor.run))
    equal_work = EqualWorkFloor(telemetry, completion, with_prompt.sample_event())
    cases.append(Case("floor plus the work llmobs adds, by hand", equal_work.run))
    return measure(cases, operations=calls, rounds=rounds, warmup=warmup)


def _configure(telemetry: Telemetry, emitters: list[Emitter]) -> Callable[[], None]:
    def prepare() -> None:
        llmobs.configure(
            emitters=emitters,
            registry=telemetry.registry,
            tracer_provider=telemetry.provider,
            hash_key="benchmark-hash-key-0123456789abcdef",
        )

    return prepare


async def plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Send ``200 hello`` without any framework."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


def run_request_breakdown(
    *, requests: int, rounds: int, warmup: int
) -> dict[str, Samples]:
    """Time the per-request parts of llmobs against a plain ASGI app."""
    from starlette.middleware.opentelemetry import OpenTelemetryMiddleware

    from llmobs_asgi import LLMObsMiddleware

    telemetry = set_up_telemetry()
    loop = asyncio.new_event_loop()
    apps: dict[str, Any] = {
        "plain ASGI app": plain_app,
        "+ LLMObsMiddleware": LLMObsMiddleware(plain_app, features=FEATURES),
        "+ Starlette OpenTelemetryMiddleware": OpenTelemetryMiddleware(
            plain_app, tracer_provider=telemetry.provider
        ),
        "+ a middleware that only starts and ends one SDK span": OneSpanMiddleware(
            plain_app, tracer_provider=telemetry.provider
        ),
    }
    cases = [
        Case(name, _asgi_run(AsgiDriver(app, loop), telemetry))
        for name, app in apps.items()
    ]
    settings = ServerSettings(features=FEATURES)
    headers = {"host": "127.0.0.1:8000", "user-agent": "bench"}

    def lifecycle(count: int) -> None:
        for _ in range(count):
            request = ServerRequest.start(
                settings, method="GET", path=HELLO_PATH, scheme="http", headers=headers
            )
            request.finish(status_code=200, route=HELLO_PATH)
            request.close()
        telemetry.flush()

    cases.append(Case("ServerRequest start + finish + close, no ASGI", lifecycle))
    try:
        return measure(cases, operations=requests, rounds=rounds, warmup=warmup)
    finally:
        loop.close()


def _asgi_run(driver: AsgiDriver, telemetry: Telemetry) -> Callable[[int], None]:
    def run(count: int) -> None:
        driver.serve(count)
        telemetry.flush()

    return run


def _table(samples: dict[str, Samples], baseline: str, unit: str) -> str:
    rows = []
    for name, values in samples.items():
        difference = paired_overhead(values.cpu_us, samples[baseline].cpu_us)
        rows.append(
            [
                name,
                format_number(median(values.cpu_us)),
                "" if name == baseline else format_number(difference),
            ]
        )
    return markdown_table(
        ["variant", f"CPU µs/{unit}", f"difference to {baseline} µs"], rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run both breakdowns and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=4000, help="per variant")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=500, help="untimed operations")
    args = parser.parse_args(argv)
    sizes = {"rounds": args.rounds, "warmup": args.warmup}
    calls = run_call_breakdown(calls=args.operations, **sizes)
    print(_table(calls, "all default emitters", "call"))
    print()
    requests = run_request_breakdown(requests=args.operations, **sizes)
    print(_table(requests, "plain ASGI app", "request"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
