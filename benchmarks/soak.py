"""Soak test: many calls in one process, and the memory they leave behind.

Run with ``.venv/bin/python -m benchmarks.soak [--calls N]``. Each call goes
through a request context and ``call_llm`` with ``record()`` of a realistic
response, with all default emitters (the JSON lines go to a logger that
keeps nothing). Prints the memory traced by ``tracemalloc`` after a warm-up
and after every quarter of the calls, and the growth per call.
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
import tracemalloc

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from prometheus_client import CollectorRegistry

import llmobs_core as llmobs
from llmobs_core.context import RequestState, enter_request, exit_request
from llmobs_core.emitters import JsonLogEmitter, OTelSpanEmitter, PrometheusEmitter

RESPONSE = {
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30},
}
FEATURES = ("chat.assistant", "nutrition.coach", "search.summarize")


class DiscardingExporter(SpanExporter):
    """Exporter that drops every span, so only llmobs' retention is seen."""

    def export(self, spans: object) -> SpanExportResult:
        """Drop the spans."""
        return SpanExportResult.SUCCESS


def configure() -> None:
    """Configure llmobs with all emitters and sinks that keep nothing."""
    quiet = logging.getLogger("benchmarks.soak.events")
    quiet.setLevel(logging.INFO)
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DiscardingExporter()))
    llmobs.configure(
        emitters=[
            JsonLogEmitter(quiet),
            PrometheusEmitter(CollectorRegistry()),
            OTelSpanEmitter(),
        ],
        tracer_provider=provider,
        hash_key="soak-test-key-0123456789",
    )


def run_calls(start: int, count: int) -> None:
    """Make ``count`` calls, each in its own request context."""
    for index in range(start, start + count):
        state = RequestState(request_id=f"req-{index}", tenant_id=f"tenant-{index}")
        tokens = enter_request(state)
        try:
            with (
                llmobs.feature(FEATURES[index % len(FEATURES)]),
                llmobs.call_llm(
                    model="gpt-4o-mini", provider="openai", prompt=f"question {index}"
                ) as call,
            ):
                call.record(RESPONSE)
        finally:
            exit_request(tokens)


def traced_bytes() -> int:
    """Return the traced memory after the writer caught up and a collection."""
    llmobs.flush(timeout=30)
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def main() -> None:
    """Run the soak and print the memory figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls to make")
    args = parser.parse_args()
    configure()
    run_calls(0, 2_000)
    tracemalloc.start()
    baseline = traced_bytes()
    started = time.perf_counter()
    quarter = args.calls // 4
    print(f"after warm-up: {baseline / 1024:.0f} KiB traced")
    for part in range(4):
        run_calls(2_000 + part * quarter, quarter)
        current = traced_bytes()
        done = (part + 1) * quarter
        print(f"after {done:,} calls: {current / 1024:.0f} KiB traced")
    seconds = time.perf_counter() - started
    growth = traced_bytes() - baseline
    tracemalloc.stop()
    print(
        f"growth: {growth / 1024:.1f} KiB, {growth / (4 * quarter):.2f} bytes per call"
    )
    print(f"{4 * quarter:,} calls in {seconds:.0f} s with tracemalloc on")


if __name__ == "__main__":
    main()
