"""Read PromQL in tests: metric and label names, Grafana variables, known names."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from llmobs_core.emitters.prometheus import metrics_for
from tests._prometheus import load_generator

# The metrics that docs/metrics.md documents, by type, without suffixes.
DOCUMENTED_COUNTERS = {
    "llm_requests",
    "llm_input_tokens",
    "llm_output_tokens",
    "llm_cost_usd",
    "llm_retries",
    "llm_cache_hits",
    "llmobs_emitter_errors",
    "llmobs_events_dropped",
    "llmobs_label_values_folded",
    "llmobs_debug_tokens_rejected",
    "llmobs_invalid_request_headers",
}
DOCUMENTED_HISTOGRAMS = {
    "llm_latency_ms",
    "llm_time_to_first_token_ms",
    "llm_stage_duration_ms",
}
DOCUMENTED_GAUGES = {"llm_calls_in_flight"}
LABELS = {
    "feature_name",
    "model",
    "region",
    "status",
    "tenant_tier",
    "stage",
    "le",
    "emitter",
    "label",
    "reason",
    "header",
}
# Grafana's built-in variables, replaced by a duration before parsing.
GRAFANA_DURATIONS = ("$__rate_interval", "$__interval", "$__range")
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
)
# An identifier that is not part of a number or a longer name and is not
# called like a function.
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)")


def exposed_series_names() -> set[str]:
    """Return every series name the Prometheus emitter's metrics expose."""
    registry = CollectorRegistry()
    metrics_for(registry)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in registry.collect():
        for suffix in suffixes[family.type]:
            names.add(family.name + suffix)
    return names


def recording_rule_names() -> set[str]:
    """Return the names that the generated rules record, with the defaults."""
    generator = load_generator()
    groups = generator.build_rule_groups(generator.Thresholds())
    return {rule.name for group in groups for rule in group.rules if not rule.alert}


def metric_names(expr: str) -> set[str]:
    """Return the metric names that a PromQL expression selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    return {
        name
        for name in _IDENTIFIER.findall(text)
        if name.lower() not in PROMQL_KEYWORDS
    }


def label_names(expr: str) -> set[str]:
    """Return the label names in an expression's matchers and groupings."""
    text = _STRING.sub('""', expr)
    names = set()
    for matchers in _MATCHERS.findall(text):
        names.update(_MATCHER_LABEL.findall(matchers))
    for grouping in _GROUPING.findall(text):
        names.update(name.strip() for name in grouping.split(",") if name.strip())
    return names


def substitute_variables(expr: str) -> str:
    """Replace Grafana variables with values that keep the expression valid."""
    for variable in GRAFANA_DURATIONS:
        expr = expr.replace(variable, "5m")
    return VARIABLE.sub(".*", expr)
