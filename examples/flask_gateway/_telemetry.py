"""Per-process llmobs set-up of the Flask gateway: event and span files, OTLP.

Under gunicorn, ``gunicorn.conf.py`` calls ``start_worker_telemetry`` in each
worker right after the fork and ``WorkerTelemetry.close`` when the worker
exits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from opentelemetry.sdk.trace import TracerProvider

import llmobs_core as llmobs
from examples.fastapi_gateway._tracing import (
    gateway_tracer_provider,
    otlp_traces_endpoint,
)
from llmobs_core.emitters import EVENTS_LOGGER
from llmobs_core.privacy.policy import HASH_KEY_ENV

TELEMETRY_DIR_ENV = "GATEWAY_TELEMETRY_DIR"
"""Environment variable naming the directory of the per-worker event and span
files. Without it, events go to stdout and no spans are recorded."""

# For the demo only: user-id hashes made with a published key can be reversed
# by guessing ids. Real deployments set LLMOBS_HASH_KEY to a secret. Every
# worker must use the same key, or one user gets a different hash per worker.
DEMO_HASH_KEY = "llmobs-demo-hash-key-not-secret"


@dataclass(slots=True)
class WorkerTelemetry:
    """Event handler, event file and tracer provider of one process."""

    handler: logging.Handler
    events_file: TextIO | None
    tracer_provider: TracerProvider | None

    def close(self) -> None:
        """Write the queued events and buffered spans, then close the files."""
        try:
            llmobs.flush()
            if self.tracer_provider is not None:
                self.tracer_provider.shutdown()
        finally:
            logging.getLogger(EVENTS_LOGGER).removeHandler(self.handler)
            self.handler.close()
            if self.events_file is not None:
                self.events_file.close()


def telemetry_dir_from_env() -> Path | None:
    """Return the directory named by ``GATEWAY_TELEMETRY_DIR``, if set."""
    value = os.environ.get(TELEMETRY_DIR_ENV)
    return Path(value) if value else None


def start_worker_telemetry(directory: Path | None) -> WorkerTelemetry:
    """Configure llmobs for this process, with files named after its pid.

    With a directory, call events are appended to ``events-<pid>.jsonl`` and
    finished spans to ``spans-<pid>.jsonl`` in it, so two workers never write
    to one file. Without one, events go to stdout. When
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    is set, spans are also exported over OTLP/HTTP, configured by the standard
    ``OTEL_*`` variables. With neither a directory nor an OTLP endpoint,
    spans go to the global tracer provider.

    Raises:
        ValueError: If an OTLP variable is invalid or names an endpoint that
            is not on a loopback address (see ``otlp_traces_endpoint``).
        RuntimeError: If ``PROMETHEUS_MULTIPROC_DIR`` was set after
            ``prometheus_client`` was imported (from ``llmobs.configure``).
    """
    pid = os.getpid()
    otlp = otlp_traces_endpoint() is not None
    events_file = None
    spans_file = None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        events_file = (directory / f"events-{pid}.jsonl").open("a", encoding="utf-8")
        spans_file = directory / f"spans-{pid}.jsonl"
    tracer_provider = gateway_tracer_provider(spans_file, otlp=otlp)
    handler = llmobs.install_json_handler(events_file)
    telemetry = WorkerTelemetry(handler, events_file, tracer_provider)
    try:
        llmobs.configure(
            tracer_provider=tracer_provider,
            hash_key=os.environ.get(HASH_KEY_ENV) or DEMO_HASH_KEY,
        )
    except BaseException:
        telemetry.close()
        raise
    return telemetry
