"""Serve Prometheus metrics from one process or from all workers of a server.

In a single process, ``render_metrics`` encodes a registry as usual. When
``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn or uWSGI with several worker
processes), every worker writes its samples to files in that directory and
each scrape builds a fresh registry around ``MultiProcessCollector``, so the
scrape shows the sum over all workers, whichever worker answers it.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values
from prometheus_client.exposition import choose_encoder

__all__ = [
    "MULTIPROC_DIR_ENV",
    "check_multiprocess_setup",
    "mark_worker_dead",
    "multiprocess_dir",
    "prepare_multiprocess_dir",
    "render_metrics",
]

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """Return the multiprocess directory from the environment, if set."""
    value = os.environ.get(MULTIPROC_DIR_ENV)
    return Path(value) if value else None


def check_multiprocess_setup() -> Path | None:
    """Check the multiprocess set-up, if ``PROMETHEUS_MULTIPROC_DIR`` is set.

    Returns:
        The directory, or None in single-process mode.

    Raises:
        RuntimeError: If the directory does not exist, or the variable was
            set after ``prometheus_client`` was imported (its metrics then
            stay in process memory and other workers never see them).
    """
    directory = multiprocess_dir()
    if directory is None:
        return None
    if not directory.is_dir():
        raise RuntimeError(
            f"{MULTIPROC_DIR_ENV}={str(directory)!r} is not a directory; create "
            "it (and empty it) before the server starts its workers, for example "
            "in gunicorn's on_starting hook with prepare_multiprocess_dir()"
        )
    if values.ValueClass is values.MutexValue:
        raise RuntimeError(
            f"{MULTIPROC_DIR_ENV} was set after prometheus_client was imported, so "
            "this process keeps its metrics in memory; set the variable in the "
            "environment of the server process (for example in the shell or "
            "systemd unit that starts gunicorn), not in application code"
        )
    return directory


def render_metrics(
    registry: CollectorRegistry | None = None, accept: str | None = None
) -> tuple[bytes, str]:
    """Encode the metrics for a scrape.

    Args:
        registry: Registry to encode in single-process mode; by default
            ``prometheus_client.REGISTRY``. Ignored in multiprocess mode.
        accept: The scrape request's ``Accept`` header; OpenMetrics is
            returned when the scraper asks for it.

    Returns:
        The body and its content type.

    Raises:
        RuntimeError: As ``check_multiprocess_setup``.
    """
    directory = check_multiprocess_setup()
    if directory is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=str(directory)
        )
    elif registry is None:
        registry = REGISTRY
    encoder, content_type = choose_encoder(accept or "")

    return encoder(registry), content_type


def prepare_multiprocess_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Create the multiprocess directory, or empty it of old sample files.

    Call it once when the server starts, before any worker is forked
    (gunicorn's ``on_starting`` hook): files left by a previous run would
    otherwise be added to the new run's counters.

    Args:
        path: The directory; by default ``PROMETHEUS_MULTIPROC_DIR``.

    Raises:
        RuntimeError: If no path is given and the variable is unset.
    """
    directory = Path(path) if path is not None else multiprocess_dir()
    if directory is None:
        raise RuntimeError(
            f"{MULTIPROC_DIR_ENV} is not set; set it to an empty directory "
            "reserved for these metrics, or pass the path"
        )
    directory.mkdir(parents=True, exist_ok=True)
    for sample_file in directory.glob("*.db"):
        sample_file.unlink()

    return directory


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (``livesum`` and similar modes).

    Call it from gunicorn's ``child_exit`` hook. Counters and histograms of
    the dead worker are kept, so totals never go down when a worker restarts.
    """
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
            pid, str(directory)
        )
