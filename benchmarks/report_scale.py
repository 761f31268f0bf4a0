"""Time ``llmobs report`` on a large generated event file, with its peak memory.

Writes ``--lines`` call event lines (default 1,000,000) shaped like the JSON
log's, plus one feedback line per 200 calls, to a temporary file, then runs
``python -m llmobs_core.cli report`` on it in a child process grouped by
feature, model and prompt template: once as installed (msgspec decodes the
lines when the ``fast`` extra is installed) and once with the standard
library's ``json`` only. The peak memory is each child's maximum resident set
size from ``resource.getrusage(RUSAGE_CHILDREN)``, read after each run, so the
second figure is the larger of the two.

Run from the repository root: ``.venv/bin/python -m benchmarks.report_scale``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

FEATURES = ("chat.assistant", "search.answer", "nutrition.coach", "docs.summarize")
MODELS = (("gpt-4o-mini", 0.15, 0.6), ("gpt-4o", 2.5, 10.0), ("claude-haiku", 0.8, 4.0))
TEMPLATES = ("v3", "v4", "v5")
STATUSES = ("ok",) * 96 + ("timeout", "rate_limited", "provider_error", "cancelled")
FEEDBACK_EVERY = 200
# Child programs per parser; each runs ``llmobs`` with the arguments after -c.
_RUN_CLI = "import sys; from llmobs_core.cli import main, records; "
PARSERS = {
    "as installed": _RUN_CLI + "sys.exit(main(sys.argv[1:]))",
    "json only": _RUN_CLI + "records.use_msgspec(False); sys.exit(main(sys.argv[1:]))",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the file, run the report on it and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="call lines")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="llmobs-report-scale-") as directory:
        path = Path(directory) / "events.jsonl"
        started = time.perf_counter()
        with path.open("w") as stream:
            write_events(stream, args.lines, random.Random(args.seed))
        generated = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
        arguments = [
            *("report", str(path)),
            *("--by", "feature_name", "--by", "model", "--by", "prompt_template_id"),
            *("--format", "json"),
        ]
        runs = []
        for parser_name, code in PARSERS.items():
            command = [sys.executable, "-c", code, *arguments]
            seconds, output = run_report(command)
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            runs.append((parser_name, seconds, peak_mb, json.loads(output)["totals"]))

    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{platform.system()}"
    )
    print(
        f"generated {args.lines:,} call lines ({size_mb:,.0f} MB) in {generated:.1f} s"
    )
    print("| parser | lines | file MB | report s | lines/s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for parser_name, seconds, peak_mb, totals in runs:
        print(
            f"| {parser_name} | {totals['calls']:,} | {size_mb:,.0f} | "
            f"{seconds:.1f} | {totals['calls'] / seconds:,.0f} | {peak_mb:,.0f} |"
        )
    return 0


def run_report(command: list[str]) -> tuple[float, str]:
    """Run the report in a child process; return its wall time and stdout."""
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"llmobs report failed: {completed.stderr}")
    return seconds, completed.stdout


def write_events(stream: IO[str], lines: int, rng: random.Random) -> None:
    """Write ``lines`` call events and their feedback events to ``stream``."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for index in range(lines):
        event = call_event(index, start + timedelta(milliseconds=index * 50), rng)
        stream.write(json.dumps(event) + "\n")
        if index % FEEDBACK_EVERY == 0:
            feedback = {
                "event": "feedback",
                "timestamp": event["timestamp"],
                "request_id": event["request_id"],
                "trace_id": event["trace_id"],
                "name": "hallucination",
                "value": 1.0,
                "label": None,
            }
            stream.write(json.dumps(feedback) + "\n")


def call_event(index: int, timestamp: datetime, rng: random.Random) -> dict[str, Any]:
    """Return one call event with the current schema's fields."""
    model, input_price, output_price = rng.choice(MODELS)
    streaming = rng.random() < 0.4
    input_tokens = rng.randint(50, 4_000)
    output_tokens = rng.randint(10, 800)
    cost = (input_tokens * input_price + output_tokens * output_price) / 1e6
    return {
        "schema_version": "1.2",
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "request_id": f"{index:032x}",
        "trace_id": f"{rng.getrandbits(128):032x}",
        "span_id": f"{rng.getrandbits(64):016x}",
        "feature_name": rng.choice(FEATURES),
        "model": model,
        "response_model": f"{model}-2026-01-01",
        "provider": "openai",
        "tenant_id": f"tenant-{rng.randint(1, 500)}",
        "tenant_tier": rng.choice(("free", "pro", "enterprise")),
        "user_id_hash": f"{rng.getrandbits(256):064x}",
        "session_id": None,
        "platform": rng.choice(("ios", "android", "web")),
        "app_version": "4.2.0",
        "region": rng.choice(("eu-west-1", "us-east-1")),
        "prompt_template_id": rng.choice(TEMPLATES),
        "prompt_hash": f"{rng.getrandbits(256):064x}",
        "prompt_template_hash": f"{rng.getrandbits(256):064x}",
        "input_tokens": input_tokens,
        "cached_input_tokens": 0,
        "cache_creation_input_tokens": None,
        "output_tokens": output_tokens,
        "reasoning_tokens": None,
        "usage_estimated": False,
        "latency_ms": rng.lognormvariate(6.5, 0.6),
        "time_to_first_token_ms": rng.lognormvariate(5.5, 0.5) if streaming else None,
        "streaming": streaming,
        "chunk_count": rng.randint(5, 200) if streaming else None,
        "finish_reason": "stop",
        "retries": 0,
        "fallback_from": None,
        "cache_hit": False,
        "status": rng.choice(STATUSES),
        "error_type": None,
        "cost_usd": cost,
        "cost_source": "bundled:0.0.30",
        "capture_mode": "none",
        "input_snippet": None,
        "output_snippet": None,
        "input_content": None,
        "output_content": None,
        "extra": {"variant": rng.choice(("a", "b"))},
    }


if __name__ == "__main__":
    raise SystemExit(main())
