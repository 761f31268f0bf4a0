"""Backends that receive llmobs events: JSON log, Prometheus, OpenTelemetry."""

from llmobs_core.emitters._base import (
    CallStart,
    CallStartEmitter,
    Emitter,
    EmitterFanout,
    StageEvent,
)
from llmobs_core.emitters._writer import flush_all
from llmobs_core.emitters.jsonlog import (
    EVENTS_LOGGER,
    JsonLogEmitter,
    install_json_handler,
)
from llmobs_core.emitters.otel import OTelSpanEmitter
from llmobs_core.emitters.otel_metrics import OTelMetricsEmitter
from llmobs_core.emitters.prometheus import LLMMetrics, PrometheusEmitter, metrics_for

__all__ = [
    "EVENTS_LOGGER",
    "CallStart",
    "CallStartEmitter",
    "Emitter",
    "EmitterFanout",
    "JsonLogEmitter",
    "LLMMetrics",
    "OTelMetricsEmitter",
    "OTelSpanEmitter",
    "PrometheusEmitter",
    "StageEvent",
    "flush_all",
    "install_json_handler",
    "metrics_for",
]
