"""Process-wide llmobs configuration: emitters, tracer and hash key."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry, values

from llmobs_core.emitters import (
    Emitter,
    EmitterFanout,
    JsonLogEmitter,
    OTelSpanEmitter,
    PrometheusEmitter,
)
from llmobs_core.exposition import MULTIPROC_DIR_ENV
from llmobs_core.pricing import PriceBook, load_prices
from llmobs_core.privacy import UserIdHasher

__all__ = ["HASH_KEY_ENV", "Config", "configure", "get_config"]

logger = logging.getLogger(__name__)

HASH_KEY_ENV = "LLMOBS_HASH_KEY"
"""Environment variable read for the user-id hash key when none is passed."""

_TRACER_NAME = "llmobs"


@dataclass(frozen=True, slots=True)
class Config:
    """Resolved configuration, read on every request; build it with ``configure``."""

    fanout: EmitterFanout
    tracer: trace.Tracer
    hash_user_id: UserIdHasher
    prices: PriceBook


_lock = threading.Lock()
_config: Config | None = None


def configure(
    *,
    emitters: Sequence[Emitter] | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    hash_key: str | bytes | None = None,
    prices: Mapping[str, Any] | str | PathLike[str] | None = None,
) -> Config:
    """Set the process-wide llmobs configuration.

    Call it once at start-up, before serving requests; a later call replaces
    the configuration for requests that start afterwards.

    Args:
        emitters: Emitters to send events to. By default the JSON log,
            Prometheus and OpenTelemetry span emitters.
        registry: Prometheus registry for the default Prometheus emitter; by
            default ``prometheus_client.REGISTRY``. Ignored with ``emitters``.
        tracer_provider: Tracer provider for llmobs spans; by default the
            global one, looked up when each span starts.
        hash_key: Secret key for hashing user ids, at least 16 bytes. By
            default read from the ``LLMOBS_HASH_KEY`` environment variable; if
            that is unset, a random per-process key is used and a WARNING
            says that user hashes then differ between processes.
        prices: Per-model prices that win over the bundled ones: a mapping
            of model name to ``ModelPrices`` or to a dict with ``input``,
            ``output`` and optionally ``cached_input``, ``cache_write`` and
            ``reasoning`` (US dollars per million tokens), or the path of a
            JSON or YAML file holding that mapping.

    Returns:
        The new configuration.

    Raises:
        TypeError: If an emitter lacks ``emit_call`` or ``emit_stage``, or
            the price table has the wrong types.
        ValueError: If the hash key is shorter than 16 bytes, or a price is
            invalid.
        FileNotFoundError: If the price file does not exist.
        RuntimeError: If ``PROMETHEUS_MULTIPROC_DIR`` was set after
            ``prometheus_client`` was imported.
    """
    global _config
    _check_import_order()
    if emitters is None:
        prometheus = PrometheusEmitter(registry)
        chosen: Sequence[Emitter] = (JsonLogEmitter(), prometheus, OTelSpanEmitter())
    else:
        chosen = _check_emitters(emitters)
        prometheus = next(
            (e for e in chosen if isinstance(e, PrometheusEmitter)),
            PrometheusEmitter(registry),
        )
    config = Config(
        fanout=EmitterFanout(chosen, count_error=prometheus.count_error),
        tracer=trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider),
        hash_user_id=UserIdHasher(_resolve_hash_key(hash_key)),
        prices=PriceBook(prices),
    )
    load_prices()
    with _lock:
        _config = config

    return config


def get_config() -> Config:
    """Return the current configuration, creating the default one on first use."""
    config = _config
    if config is not None:
        return config
    with _lock:
        if _config is not None:
            return _config
    return configure()


def _check_emitters(emitters: Sequence[Emitter]) -> Sequence[Emitter]:
    for emitter in emitters:
        if not isinstance(emitter, Emitter):
            raise TypeError(
                f"emitters must implement emit_call() and emit_stage() and have "
                f"a name, got {emitter!r}; see llmobs_core.emitters.Emitter"
            )
    return tuple(emitters)


def _resolve_hash_key(hash_key: str | bytes | None) -> bytes:
    if hash_key is None:
        hash_key = os.environ.get(HASH_KEY_ENV) or None
    if hash_key is None:
        logger.warning(
            "%s is not set: user ids are hashed with a random per-process key, "
            "so the same user gets different hashes in different processes; "
            "set %s to a secret of at least 16 bytes",
            HASH_KEY_ENV,
            HASH_KEY_ENV,
        )
        return secrets.token_bytes(32)
    if isinstance(hash_key, str):
        return hash_key.encode()
    return hash_key


def _check_import_order() -> None:
    # The directory itself may be created later, by the server's start-up
    # hook, so only the import order is checked here.
    if os.environ.get(MULTIPROC_DIR_ENV) and values.ValueClass is values.MutexValue:
        raise RuntimeError(
            f"{MULTIPROC_DIR_ENV} was set after prometheus_client was imported, so "
            "metrics stay in this process's memory; set it in the environment of "
            "the server process, before Python starts"
        )
