"""Process-wide llmobs configuration: emitters, tracer and hash key."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from typing import Any

from opentelemetry import metrics, trace
from prometheus_client import CollectorRegistry, values

from llmobs_core._open_calls import move_exit_hook_last
from llmobs_core.budgets import Budget, BudgetBook, BudgetEmitter, budget_book_from
from llmobs_core.emitters import (
    Emitter,
    EmitterFanout,
    JsonLogEmitter,
    LLMMetrics,
    OTelMetricsEmitter,
    OTelSpanEmitter,
    PrometheusEmitter,
)
from llmobs_core.exposition import MULTIPROC_DIR_ENV
from llmobs_core.pricing import PriceBook, load_prices
from llmobs_core.privacy import DebugTokenVerifier, Environment, Hasher, PrivacyPolicy
from llmobs_core.redaction import Redactor

__all__ = ["Config", "configure", "ensure_configured", "get_config"]

logger = logging.getLogger(__name__)


_TRACER_NAME = "llmobs"


@dataclass(frozen=True, slots=True)
class Config:
    """Resolved configuration, read on every request; build it with ``configure``."""

    fanout: EmitterFanout
    tracer: trace.Tracer
    hasher: Hasher
    prices: PriceBook
    privacy: PrivacyPolicy
    debug_tokens: DebugTokenVerifier
    metrics: LLMMetrics
    """The Prometheus metrics of the configured registry, also used for
    llmobs' own counters when custom emitters replace the default ones."""
    redactor: Redactor
    budgets: BudgetBook | None = None
    """The cost budgets that ``budget_decision()`` checks, if any."""


_lock = threading.Lock()
_config: Config | None = None


def configure(
    *,
    emitters: Sequence[Emitter] | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    hash_key: str | bytes | None = None,
    prices: Mapping[str, Any] | str | PathLike[str] | None = None,
    privacy: PrivacyPolicy | None = None,
    budgets: BudgetBook | Sequence[Budget] | None = None,
) -> Config:
    """Set the process-wide llmobs configuration.

    Call it once at start-up, before serving requests; a later call replaces
    the configuration for requests that start afterwards.

    Args:
        emitters: Emitters to send events to. By default the JSON log,
            Prometheus and OpenTelemetry span emitters.
        registry: Prometheus registry for the default Prometheus emitter; by
            default ``prometheus_client.REGISTRY``. With ``emitters`` it still
            contains llmobs' own counters (emitter errors, rejected debug tokens)
            unless one of the emitters is a ``PrometheusEmitter``.
        tracer_provider: Tracer provider for llmobs spans; by default the
            global one, looked up when each span starts.
        meter_provider: Meter provider for the OpenTelemetry GenAI metrics.
            With the default emitters, these metrics are recorded when a
            provider is passed here or a global one was set before this call.
        hash_key: Secret key for hashing prompts and user ids, at least 16
            bytes; a shortcut for ``PrivacyPolicy(hash_key=...)``, and it wins
            over the policy's. See ``PrivacyPolicy`` for the default.
        prices: Per-model prices that win over the bundled ones: a mapping
            of model name to ``ModelPrices`` or to a dict with ``input``,
            ``output`` and optionally ``cached_input``, ``cache_write`` and
            ``reasoning`` (US dollars per million tokens), or the path of a
            JSON or YAML file holding that mapping.
        privacy: What user content may be captured; ``PrivacyPolicy()`` by
            default, which captures none.
        budgets: Cost budgets for ``budget_decision()``: a ``BudgetBook``, or
            a list of ``Budget`` kept in this process's memory. A
            ``BudgetEmitter`` is added to the emitters to count their spend.

    Returns:
        The new configuration.

    Raises:
        TypeError: If an emitter lacks ``emit_call`` or ``emit_stage``, or
            the price table or ``budgets`` has the wrong types.
        ValueError: If the hash key is shorter than 16 bytes or missing in
            production, a price is invalid, or two budgets share a name.
        FileNotFoundError: If the price file does not exist.
        RuntimeError: If ``PROMETHEUS_MULTIPROC_DIR`` was set after
            ``prometheus_client`` was imported.
    """
    global _config
    _check_import_order()
    _check_arguments(registry, tracer_provider, hash_key)
    if emitters is None:
        prometheus = PrometheusEmitter(registry)
        on_drop = prometheus.metrics.events_dropped.labels(JsonLogEmitter.name).inc
        chosen: Sequence[Emitter] = (
            JsonLogEmitter(on_drop=on_drop),
            prometheus,
            OTelSpanEmitter(),
        )
        if meter_provider is not None or _global_meter_provider_set():
            chosen = (*chosen, OTelMetricsEmitter(meter_provider))
    else:
        chosen = _check_emitters(emitters)
        prometheus = next(
            (e for e in chosen if isinstance(e, PrometheusEmitter)),
            PrometheusEmitter(registry),
        )
    book = budget_book_from(budgets, registry)
    if book is not None:
        chosen = (*chosen, BudgetEmitter(book))
    policy = privacy or PrivacyPolicy()
    if hash_key is not None:
        policy = replace(policy, hash_key=hash_key)
    key = policy.resolve_key()
    config = Config(
        fanout=EmitterFanout(chosen, count_error=prometheus.count_error),
        tracer=trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider),
        hasher=Hasher(key),
        prices=PriceBook(prices),
        privacy=policy,
        debug_tokens=DebugTokenVerifier(key, policy.debug_token_max_age),
        metrics=prometheus.metrics,
        redactor=Redactor(policy.redaction_patterns),
        budgets=book,
    )
    load_prices()
    with _lock:
        _config = config
    move_exit_hook_last()
    return config


def get_config() -> Config:
    """Return the current configuration, creating the default one on first use.

    Runs on the request path, so an invalid default configuration (a bad
    ``LLMOBS_HASH_KEY``, say) is logged once at ERROR and replaced by a
    development configuration with a random hash key. It raises only if that
    fallback fails too, which ``PROMETHEUS_MULTIPROC_DIR`` set after
    ``prometheus_client`` was imported causes. Call ``configure()`` or
    ``ensure_configured()`` at start-up to have such errors raised there
    instead, as the middlewares do when they are built.
    """
    config = _config
    if config is not None:
        return config
    try:
        return ensure_configured()
    except Exception:
        logger.exception(
            "llmobs default configuration failed; using a random hash key "
            "until configure() succeeds"
        )
        fallback = PrivacyPolicy(
            hash_key=secrets.token_bytes(32), environment=Environment.DEVELOPMENT
        )
        return configure(privacy=fallback)


def ensure_configured() -> Config:
    """Return the current configuration, creating the default one if none.

    Raises:
        ValueError, RuntimeError: As ``configure()``, for an invalid default
            configuration (for example from environment variables).
    """
    with _lock:
        if _config is not None:
            return _config
    return configure()


def _check_arguments(
    registry: object, tracer_provider: object, hash_key: object
) -> None:
    if registry is not None and not isinstance(registry, CollectorRegistry):
        raise TypeError(
            f"registry must be a prometheus_client.CollectorRegistry, got {registry!r}"
        )
    if tracer_provider is not None and not callable(
        getattr(tracer_provider, "get_tracer", None)
    ):
        raise TypeError(
            "tracer_provider must be an OpenTelemetry TracerProvider, got "
            f"{tracer_provider!r}"
        )
    if hash_key is not None and not isinstance(hash_key, str | bytes):
        raise TypeError(
            f"hash_key must be str or bytes, got {type(hash_key).__name__}; "
            "pass the secret itself"
        )


def _check_emitters(emitters: Sequence[Emitter]) -> Sequence[Emitter]:
    if isinstance(emitters, Emitter) or not isinstance(emitters, Sequence):
        raise TypeError(
            f"emitters must be a list of emitters, got {emitters!r}; "
            "wrap a single emitter in a list"
        )
    for emitter in emitters:
        if not isinstance(emitter, Emitter):
            raise TypeError(
                f"emitters must implement emit_call() and emit_stage() and have "
                f"a name, got {emitter!r}; see llmobs_core.emitters.Emitter"
            )
    return tuple(emitters)


def _global_meter_provider_set() -> bool:
    # Until set_meter_provider() is called, the global provider is a proxy
    # (or a no-op one when OTEL_SDK_DISABLED is set).
    provider = metrics.get_meter_provider()
    return not isinstance(provider, metrics.NoOpMeterProvider) and (
        type(provider).__name__ != "_ProxyMeterProvider"
    )


def _check_import_order() -> None:
    # The directory itself may be created later, by the server's start-up
    # hook, so only the import order is checked here.
    if os.environ.get(MULTIPROC_DIR_ENV) and values.ValueClass is values.MutexValue:
        raise RuntimeError(
            f"{MULTIPROC_DIR_ENV} was set after prometheus_client was imported, so "
            "metrics stay in this process's memory; set it in the environment of "
            "the server process, before Python starts"
        )
