r"""Gunicorn settings for the Flask example gateway: two workers, one /metrics.

Run from the repository root. ``PROMETHEUS_MULTIPROC_DIR`` must be set in
the environment before Python starts, so that ``prometheus_client`` writes
every worker's samples to files there::

    export PROMETHEUS_MULTIPROC_DIR="$(mktemp -d)"
    export GATEWAY_PROVIDER_URL=http://127.0.0.1:8001/v1
    export GATEWAY_TELEMETRY_DIR=telemetry   # optional: event and span files
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318  # optional: OTLP
    python -m gunicorn -c examples/flask_gateway/gunicorn.conf.py

Command-line options, such as ``--bind 127.0.0.1:9000`` or ``--workers 4``,
win over the values here. The hooks below run in these processes:

- ``on_starting`` (master, once): empty the metrics directory, so no counts
  from an earlier run are added, and fail fast if the set-up is wrong,
  including an OTLP endpoint that is not on a loopback address.
- ``post_fork`` (each worker, before it loads the app): configure llmobs,
  with event and span files named after the worker's pid and, when an OTLP
  endpoint variable is set, an OTLP/HTTP span exporter.
- ``worker_exit`` (each worker, on a graceful exit): export the spans still
  buffered, to the files and over OTLP, and close the files.
- ``child_exit`` (master, for each worker that ended, killed ones included):
  drop the worker's ``livesum`` gauge file, so ``llm_calls_in_flight`` stops
  counting calls of a process that no longer exists.
"""

from __future__ import annotations

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from examples.fastapi_gateway._tracing import otlp_traces_endpoint
from examples.flask_gateway._telemetry import (
    WorkerTelemetry,
    start_worker_telemetry,
    telemetry_dir_from_env,
)
from llmobs_core.exposition import (
    check_multiprocess_setup,
    mark_worker_dead,
    prepare_multiprocess_dir,
)

wsgi_app = "examples.flask_gateway.wsgi:app"
bind = ["127.0.0.1:8000"]
workers = 2
# Threads let one worker serve several streams at once; the sync worker
# would hold a whole process for each streamed answer.
worker_class = "gthread"
threads = 8
# Gunicorn 25.1 and later open a control socket at a fixed path under
# $XDG_RUNTIME_DIR or $HOME by default, so two servers of one user would share
# it. Older versions ignore this setting.
control_socket_disable = True

_telemetry: WorkerTelemetry | None = None


def on_starting(server: Arbiter) -> None:
    """Empty the multiprocess metrics directory and check the set-up."""
    prepare_multiprocess_dir()
    check_multiprocess_setup()
    otlp_traces_endpoint()


def post_fork(server: Arbiter, worker: Worker) -> None:
    """Configure llmobs in the new worker."""
    global _telemetry
    _telemetry = start_worker_telemetry(telemetry_dir_from_env())


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """Export the worker's buffered spans and close its event and span files."""
    if _telemetry is not None:
        _telemetry.close()


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Drop the live gauges of a worker that ended."""
    mark_worker_dead(worker.pid)
