"""Cost of one observed LLM call against the raw floor of its primitives.

The llmobs variant runs ``call_llm`` with ``record()`` of an OpenAI SDK
``ChatCompletion`` inside a request opened as the middleware opens it. It
uses the default emitters: the JSON log (background writer, INFO enabled,
records formatted and discarded), Prometheus and the OpenTelemetry span.

The floor does by hand what any such instrumentation must do, with the same
libraries: one SDK span with 10 attributes, 3 counters and 1 histogram
through ``.labels()``, the same pydantic event built and dumped to JSON, and
one log call on the caller's thread.

Run from the repository root: ``.venv/bin/python -m benchmarks.per_call``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Histogram

import llmobs_core as llmobs
from benchmarks._harness import (
    Case,
    Samples,
    format_number,
    markdown_table,
    measure,
    median,
    paired_ratio,
    spread,
)
from benchmarks._telemetry import Telemetry, discard_events, set_up_telemetry
from llmobs_core.emitters import EVENTS_LOGGER
from llmobs_core.schema import LLMCallLog
from llmobs_core.server import ServerRequest, ServerSettings

TARGET_RATIO = 1.25
FEATURE = "chat.assistant"
MODEL = "gpt-4o-mini"
FLOOR_LOGGER = "benchmarks.floor"

MESSAGES = [
    {
        "role": "system",
        "content": (
            "You are a nutrition coach. Answer in at most five sentences, cite "
            "the food groups you rely on, and never give medical advice. If the "
            "question is about allergies or medication, tell the user to ask a "
            "doctor or a pharmacist instead."
        ),
    },
    {
        "role": "user",
        "content": (
            "I train three times a week and eat no meat. How much protein should "
            "I eat per day, and which breakfasts give me most of it?"
        ),
    },
]

REQUEST_HEADERS = {
    "x-tenant-id": "acme",
    "x-tenant-tier": "enterprise",
    "x-user-id": "user-42",
    "x-region": "eu-west-1",
}


def chat_completion() -> Any:
    """Return a realistic OpenAI ``ChatCompletion`` SDK object."""
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_06737a9306",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {
                        "role": "assistant",
                        "refusal": None,
                        "annotations": [],
                        "content": (
                            "Aim for about 1.4 to 1.8 g of protein per kg of body "
                            "weight a day. Greek yoghurt with nuts, eggs on "
                            "wholegrain toast, tofu scrambles and overnight oats "
                            "made with milk and seeds each give 20 to 30 g."
                        ),
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 412,
                "completion_tokens": 128,
                "total_tokens": 540,
                "prompt_tokens_details": {"cached_tokens": 256, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
        }
    )


class _CaptureHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class LLMObsVariant:
    """``call_llm`` plus ``record()`` with the configured emitters.

    Args:
        telemetry: The benchmark's telemetry.
        completion: The response passed to ``record()``.
        prompt: The prompt passed to ``call_llm``, hashed by llmobs.
    """

    def __init__(
        self, telemetry: Telemetry, completion: Any, prompt: Any = MESSAGES
    ) -> None:
        self.telemetry = telemetry
        self.completion = completion
        self.prompt = prompt
        self.settings = ServerSettings(features={"/api/chat/*": FEATURE})

    def run(self, calls: int) -> None:
        """Run ``calls`` calls inside one request, then flush."""
        request = ServerRequest.start(
            self.settings,
            method="POST",
            path="/api/chat/assistant",
            scheme="http",
            headers=REQUEST_HEADERS,
        )
        completion = self.completion
        try:
            for _ in range(calls):
                with llmobs.call_llm(
                    model=MODEL,
                    provider="openai",
                    prompt_template_id="assistant.v3",
                    prompt=self.prompt,
                ) as call:
                    call.record(completion)
            request.finish(status_code=200, route="/api/chat/assistant")
        finally:
            request.close()
        self.telemetry.flush()

    def sample_event(self) -> dict[str, Any]:
        """Run one call and return its event, as logged, as a dict."""
        capture = _CaptureHandler()
        logger = logging.getLogger(EVENTS_LOGGER)
        logger.addHandler(capture)
        try:
            self.run(1)
        finally:
            logger.removeHandler(capture)
        if len(capture.messages) != 1:
            raise RuntimeError(
                f"expected 1 llmobs event from one call, got {len(capture.messages)}"
            )
        event: dict[str, Any] = json.loads(capture.messages[0])
        return event


class FloorVariant:
    """The same primitives called directly, without llmobs stages or emitters."""

    def __init__(
        self, telemetry: Telemetry, completion: Any, event: dict[str, Any]
    ) -> None:
        self.telemetry = telemetry
        self.completion = completion
        self.tracer = telemetry.provider.get_tracer("benchmarks.floor")
        registry = CollectorRegistry()
        self.requests = Counter(
            "floor_requests",
            "LLM calls.",
            ("feature_name", "model", "region", "status"),
            registry=registry,
        )

        self.input_tokens = Counter(
            "floor_input_tokens",
            "Input tokens.",
            ("feature_name", "model"),
            registry=registry,
        )
        self.output_tokens = Counter(
            "floor_output_tokens",
            "Output tokens.",
            ("feature_name", "model"),
            registry=registry,
        )
        self.latency = Histogram(
            "floor_latency_ms",
            "Latency in milliseconds.",
            ("feature_name", "model", "region"),
            buckets=(10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000),
            registry=registry,
        )

        self.logger = discard_events(FLOOR_LOGGER)
        # The fields that stay the same from call to call, taken from a real
        # llmobs event so that both variants build and dump the same content.
        per_call = {
            "timestamp",
            "trace_id",
            "span_id",
            "latency_ms",
            "response_model",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "finish_reason",
        }
        self.template = {k: v for k, v in event.items() if k not in per_call}
        self.region = event.get("region") or "unknown"

    def run(self, calls: int) -> None:
        """Run ``calls`` calls inside one parent span, then flush."""
        with self.tracer.start_as_current_span("POST /api/chat/assistant"):
            for _ in range(calls):
                self._call()
        self.telemetry.flush()

    def _call(self) -> None:
        completion = self.completion
        started = time.perf_counter_ns()
        with self.tracer.start_as_current_span(
            "call_llm",
            kind=SpanKind.CLIENT,
            attributes={
                "llm.stage": "call_llm",
                "llm.feature_name": FEATURE,
                "llm.model": MODEL,
                "llm.provider": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": MODEL,
            },
        ) as span:
            usage = completion.usage
            choice = completion.choices[0]
            latency_ms = (time.perf_counter_ns() - started) / 1e6
            span.set_attributes(
                {
                    "gen_ai.response.model": completion.model,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                }
            )
            self.requests.labels(FEATURE, MODEL, self.region, "ok").inc()
            self.input_tokens.labels(FEATURE, MODEL).inc(usage.prompt_tokens)
            self.output_tokens.labels(FEATURE, MODEL).inc(usage.completion_tokens)
            self.latency.labels(FEATURE, MODEL, self.region).observe(latency_ms)
            context = span.get_span_context()
            event = LLMCallLog(
                **self.template,
                timestamp=datetime.now(UTC),
                trace_id=f"{context.trace_id:032x}",
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


@dataclass
class PerCallResults:
    """Results of one per-call run.

    Attributes:
        calls: Calls per variant and round.
        rounds: Number of rounds.
        llmobs: Per-call times of the llmobs variant.
        floor: Per-call times of the floor.
        events_dropped: llmobs events dropped by a full queue (should be 0).
        spans_per_call: Spans exported per llmobs call.
    """

    calls: int
    rounds: int
    llmobs: Samples
    floor: Samples
    events_dropped: float
    spans_per_call: float

    @property
    def cpu_ratio(self) -> float:
        """Median per-round CPU-time ratio, llmobs / floor."""
        return paired_ratio(self.llmobs.cpu_us, self.floor.cpu_us)

    @property
    def wall_ratio(self) -> float:
        """Median per-round wall-time ratio, llmobs / floor."""
        return paired_ratio(self.llmobs.wall_us, self.floor.wall_us)


def run_per_call(*, calls: int, rounds: int, warmup: int) -> PerCallResults:
    """Time the llmobs call and its floor in interleaved rounds."""
    telemetry = set_up_telemetry()
    completion = chat_completion()
    observed = LLMObsVariant(telemetry, completion)
    floor = FloorVariant(telemetry, completion, observed.sample_event())

    exported = telemetry.exporter.count
    observed.run(100)
    # The request span is one of them.
    spans_per_call = (telemetry.exporter.count - exported - 1) / 100

    samples = measure(
        [Case("llmobs", observed.run), Case("floor", floor.run)],
        operations=calls,
        rounds=rounds,
        warmup=warmup,
    )
    dropped = telemetry.registry.get_sample_value(
        "llmobs_events_dropped_total", {"emitter": "jsonlog"}
    )
    return PerCallResults(
        calls=calls,
        rounds=rounds,
        llmobs=samples["llmobs"],
        floor=samples["floor"],
        events_dropped=dropped or 0.0,
        spans_per_call=spans_per_call,
    )


def render(results: PerCallResults) -> str:
    """Format the per-call results as Markdown."""
    rows = []
    for label, samples in (
        ("llmobs `call_llm` + `record()`", results.llmobs),
        ("floor: span + 4 metrics + event + log", results.floor),
    ):
        rows.append(
            [
                label,
                format_number(median(samples.cpu_us)),
                format_number(median(samples.wall_us)),
                f"{spread(samples.cpu_us) * 100:.0f}%",
            ]
        )
    table = markdown_table(["variant", "CPU µs/call", "µs/call", "spread"], rows)
    verdict = "yes" if results.cpu_ratio <= TARGET_RATIO else "no"
    ratios = markdown_table(
        ["ratio llmobs / floor", "CPU", "wall", "target", "met"],
        [
            [
                "one observed call",
                f"{results.cpu_ratio:.2f}x",
                f"{results.wall_ratio:.2f}x",
                f"<= {TARGET_RATIO:.2f}x",
                verdict,
            ]
        ],
    )
    return "\n".join(
        [
            f"Median of {results.rounds} interleaved rounds of {results.calls:,} "
            "calls per variant; ratios are per-round ratios of the same round. "
            f"llmobs spans per call: {results.spans_per_call:.0f}; events "
            f"dropped: {results.events_dropped:.0f}.",
            "",
            table,
            "",
            ratios,
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the per-call benchmark and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=500, help="untimed calls")
    args = parser.parse_args(argv)
    print(
        render(run_per_call(calls=args.calls, rounds=args.rounds, warmup=args.warmup))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
