#!/usr/bin/env python3
r"""Write the Prometheus recording and alerting rules for the llmobs metrics.

The rules read the ``llm_*`` series that ``llmobs_core.emitters.prometheus``
exposes. Recording rules pre-compute the rates, ratios and quantiles that the
alerts and the Grafana dashboard read, so each alert evaluates one cheap
comparison. Alert thresholds are parameters, taken from the command line, from
a TOML or JSON file, or from the defaults in ``Thresholds``::

    python deploy/prometheus/generate.py --p95-ms 8000 --error-rate 0.02 \
        --daily-budget-usd chat.assistant=50 nutrition.coach=20
    python deploy/prometheus/generate.py --config thresholds.toml
    python deploy/prometheus/generate.py --check   # compare, do not write

Command-line options override the file. Without options the output is the
committed ``llm_rules.yml`` beside this script. Only the standard library is
used, so the script runs with any Python 3.11 or later.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shlex
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "llm_rules.yml"
SCRIPT = "deploy/prometheus/generate.py"

ERROR_STATUSES = ("timeout", "rate_limited", "provider_error", "error")
"""Call statuses that count as errors. ``cancelled`` and guardrail blocks do not."""

SECONDS_PER_DAY = 86_400
COST_WINDOWS = ("5m", "30m", "1h", "6h")
FAST_BURN_WINDOWS = ("1h", "5m")
SLOW_BURN_WINDOWS = ("6h", "30m")

# How long a condition must hold before its alert fires.
LATENCY_FOR = "15m"
ERROR_RATE_FOR = "10m"
COST_PER_1K_FOR = "30m"
FAST_BURN_FOR = "5m"
SLOW_BURN_FOR = "15m"

# The Prometheus emitter cuts label values to 64 characters, so a longer
# feature name can never match a series.
MAX_FEATURE_NAME_LENGTH = 64
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# A value that YAML reads as a plain string: it starts with a letter or a
# bracket, and _yaml_scalar also rejects ": ", " #" and trailing spaces.
_PLAIN_SCALAR = re.compile(r"[A-Za-z(][^\n]*")
# Plain words that YAML 1.1 reads as booleans or null.
_YAML_KEYWORDS = frozenset(
    ("true", "false", "yes", "no", "on", "off", "y", "n", "null")
)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The alert thresholds that the generated rules use.

    Attributes:
        p95_ms: p95 latency per feature, in milliseconds, above which
            ``LLMLatencyP95High`` fires.
        feature_p95_ms: Per-feature p95 thresholds that replace ``p95_ms``.
        error_rate: Share of a model's calls, from 0 to 1, ending in ``timeout``,
            ``rate_limited``, ``provider_error`` or ``error`` above which
            ``LLMErrorRateHigh`` fires.
        cost_ratio: Factor by which a feature's cost per 1,000 requests over
            the last hour must exceed the same hour a week earlier for
            ``LLMCostPer1kRequestsJump`` to fire.
        default_daily_budget_usd: Daily budget of each feature without its own
            budget, in US dollars. None means such features get no budget
            alerts.
        daily_budget_usd: Per-feature daily budgets in US dollars.
        fast_burn_rate: Burn rate (spend as a multiple of the daily budget's
            even pace) over 1 hour and 5 minutes above which
            ``LLMCostBudgetFastBurn`` fires.
        slow_burn_rate: Burn rate over 6 hours and 30 minutes above which
            ``LLMCostBudgetSlowBurn`` fires.
    """

    p95_ms: float = 8_000.0
    feature_p95_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)
    error_rate: float = 0.02
    cost_ratio: float = 2.0
    default_daily_budget_usd: float | None = 100.0
    daily_budget_usd: Mapping[str, float] = dataclasses.field(default_factory=dict)
    fast_burn_rate: float = 6.0
    slow_burn_rate: float = 2.0

    def __post_init__(self) -> None:
        _check_positive("p95_ms", self.p95_ms)
        _check_positive("error_rate", self.error_rate)
        if self.error_rate >= 1:
            raise ValueError(
                f"invalid error_rate {self.error_rate!r}: expected a number "
                "between 0 and 1, such as 0.02 for 2%"
            )
        _check_positive("cost_ratio", self.cost_ratio)
        if self.default_daily_budget_usd is not None:
            _check_positive("default_daily_budget_usd", self.default_daily_budget_usd)
        _check_positive("fast_burn_rate", self.fast_burn_rate)
        _check_positive("slow_burn_rate", self.slow_burn_rate)
        for option, values in (
            ("feature_p95_ms", self.feature_p95_ms),
            ("daily_budget_usd", self.daily_budget_usd),
        ):
            for feature, value in values.items():
                _check_feature_name(option, feature)
                _check_positive(f"{option}[{feature!r}]", value)

    def command_line(self) -> str:
        """Return the generator command that reproduces these thresholds."""
        parts = [
            f"python {SCRIPT}",
            f"--p95-ms {_number(self.p95_ms)}",
            f"--error-rate {_number(self.error_rate)}",
            f"--cost-ratio {_number(self.cost_ratio)}",
            "--default-daily-budget-usd "
            + (
                "none"
                if self.default_daily_budget_usd is None
                else _number(self.default_daily_budget_usd)
            ),
            f"--fast-burn-rate {_number(self.fast_burn_rate)}",
            f"--slow-burn-rate {_number(self.slow_burn_rate)}",
        ]
        if self.feature_p95_ms:
            parts.append("--feature-p95-ms " + _pairs(self.feature_p95_ms))
        if self.daily_budget_usd:
            parts.append("--daily-budget-usd " + _pairs(self.daily_budget_usd))
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One recording or alerting rule.

    Attributes:
        name: The recorded metric name, or the alert name.
        expr: The PromQL expression.
        alert: Whether the rule is an alerting rule.
        duration: How long an alert's condition must hold (``for``).
        labels: Labels added to the recorded series or the alert.
        annotations: An alert's ``summary`` and ``description``.
    """

    name: str
    expr: str
    alert: bool = False
    duration: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RuleGroup:
    """A Prometheus rule group, whose rules are evaluated in order."""

    name: str
    rules: tuple[Rule, ...]


def build_rule_groups(thresholds: Thresholds) -> tuple[RuleGroup, ...]:
    """Build the recording group and the alerting group for ``thresholds``."""
    recording = (
        *_request_records(),
        *_latency_records(),
        *_token_records(),
        *_cost_records(thresholds),
    )
    alerts = (
        *_latency_alerts(thresholds),
        _error_rate_alert(thresholds),
        _cost_per_1k_alert(thresholds),
        *_budget_alerts(thresholds),
    )
    return (
        RuleGroup("llm_recording", recording),
        RuleGroup("llm_alerts", alerts),
    )


def _request_records() -> tuple[Rule, ...]:
    errors = "|".join(ERROR_STATUSES)
    return (
        Rule(
            "llm:requests:rate5m",
            "sum by (feature_name, model, region, status) "
            "(rate(llm_requests_total[5m]))",
        ),
        Rule(
            "llm:requests:rate1h",
            "sum by (feature_name, model, region, status) "
            "(rate(llm_requests_total[1h]))",
        ),
        # "or ... * 0" records 0, not nothing, for a model without errors.
        Rule(
            "llm:error_ratio:rate5m",
            "(\n"
            f'  sum by (model) (llm:requests:rate5m{{status=~"{errors}"}})\n'
            "  or sum by (model) (llm:requests:rate5m) * 0\n"
            ")\n"
            "/ sum by (model) (llm:requests:rate5m)",
        ),
    )


def _latency_records() -> tuple[Rule, ...]:
    return (
        Rule(
            "llm:latency_ms_bucket:rate5m",
            "sum by (feature_name, model, region, le) "
            "(rate(llm_latency_ms_bucket[5m]))",
        ),
        Rule(
            "llm:latency_ms:p95_5m",
            "histogram_quantile(0.95, "
            "sum by (feature_name, le) (llm:latency_ms_bucket:rate5m))",
        ),
        Rule(
            "llm:latency_ms:p95_5m_by_model_region",
            "histogram_quantile(0.95, "
            "sum by (model, region, le) (llm:latency_ms_bucket:rate5m))",
        ),
        Rule(
            "llm:time_to_first_token_ms:p95_5m",
            "histogram_quantile(0.95, "
            "sum by (feature_name, le) (rate(llm_time_to_first_token_ms_bucket[5m])))",
        ),
    )


def _token_records() -> tuple[Rule, ...]:
    return tuple(
        Rule(
            f"llm:{kind}_tokens:rate5m",
            f"sum by (feature_name, model) (rate(llm_{kind}_tokens_total[5m]))",
        )
        for kind in ("input", "output")
    )


def _cost_records(thresholds: Thresholds) -> tuple[Rule, ...]:
    rates = tuple(
        Rule(
            f"llm:cost_usd:rate{window}",
            f"sum by (feature_name) (rate(llm_cost_usd_total[{window}]))",
        )
        for window in COST_WINDOWS
    )
    per_1k = Rule(
        "llm:cost_per_1k_requests:1h",
        "1000 * llm:cost_usd:rate1h\n/ sum by (feature_name) (llm:requests:rate1h)",
    )
    budget = _budget_record(thresholds)
    if budget is None:
        return (*rates, per_1k)
    burns = tuple(
        Rule(
            f"llm:cost_budget_burn:rate{window}",
            f"llm:cost_usd:rate{window} * {SECONDS_PER_DAY}\n"
            "/ llm:cost_budget_usd:daily",
        )
        for window in COST_WINDOWS
    )
    return (*rates, per_1k, budget, *burns)


def _budget_record(thresholds: Thresholds) -> Rule | None:
    """Return the rule that records each spending feature's daily budget.

    The budget is a constant added to the 6-hour cost rate times 0, so it
    exists for every feature that has cost samples in the longest burn-rate
    window, with the feature's own budget or the default.
    """
    parts = [
        f"llm:cost_usd:rate6h{{feature_name={_promql_string(feature)}}} * 0 "
        f"+ {_number(budget)}"
        for feature, budget in sorted(thresholds.daily_budget_usd.items())
    ]
    if thresholds.default_daily_budget_usd is not None:
        selector = _excluding(thresholds.daily_budget_usd)
        parts.append(
            f"llm:cost_usd:rate6h{selector} * 0 "
            f"+ {_number(thresholds.default_daily_budget_usd)}"
        )
    if not parts:
        return None
    return Rule("llm:cost_budget_usd:daily", "\nor ".join(parts))


def _latency_alerts(thresholds: Thresholds) -> tuple[Rule, ...]:
    # One rule for all thresholds: rules with the same alert name and labels
    # fail promtool's duplicate-rules lint.
    conditions = [
        f"llm:latency_ms:p95_5m{{feature_name={_promql_string(feature)}}} "
        f"> {_number(limit)}"
        for feature, limit in sorted(thresholds.feature_p95_ms.items())
    ]
    conditions.append(
        f"llm:latency_ms:p95_5m{_excluding(thresholds.feature_p95_ms)} "
        f"> {_number(thresholds.p95_ms)}"
    )
    limit = _feature_threshold_text(thresholds.feature_p95_ms, thresholds.p95_ms)
    return (
        Rule(
            "LLMLatencyP95High",
            "\nor ".join(conditions),
            alert=True,
            duration=LATENCY_FOR,
            labels={"severity": "warning"},
            annotations={
                "summary": "p95 latency of LLM calls of feature "
                f"{{{{ $labels.feature_name }}}} is above {limit} ms",
                "description": "The 95th percentile latency of the LLM calls of "
                "feature {{ $labels.feature_name }} over 5 minutes is "
                "{{ $value | humanize }} ms, above the threshold of "
                f"{limit} ms, for at least {LATENCY_FOR}. "
                "llm:latency_ms:p95_5m_by_model_region shows which model and "
                "region are slow.",
            },
        ),
    )


def _feature_threshold_text(overrides: Mapping[str, float], default: float) -> str:
    """Return an alert template that prints the threshold of the alert's feature.

    Without per-feature thresholds it is the default as a plain number.
    """
    if not overrides:
        return _number(default)
    branches = [
        # A JSON string is also a valid Go template string literal.
        f"if eq $labels.feature_name {json.dumps(feature)} }}}}{_number(limit)}"
        for feature, limit in sorted(overrides.items())
    ]
    return (
        "{{ "
        + "{{ else ".join(branches)
        + f"{{{{ else }}}}{_number(default)}{{{{ end }}}}"
    )


def _error_rate_alert(thresholds: Thresholds) -> Rule:
    # round() drops float noise such as 0.07 * 100 = 7.000000000000001.
    percent = _number(round(thresholds.error_rate * 100, 9))
    statuses = _or_list(ERROR_STATUSES)
    return Rule(
        "LLMErrorRateHigh",
        f"llm:error_ratio:rate5m > {_number(thresholds.error_rate)}",
        alert=True,
        duration=ERROR_RATE_FOR,
        labels={"severity": "critical"},
        annotations={
            "summary": "More than "
            f"{percent}% of the LLM calls to model {{{{ $labels.model }}}} fail",
            "description": "{{ $value | humanizePercentage }} of the LLM calls "
            "to model {{ $labels.model }} over 5 minutes ended with status "
            f"{statuses}, above the threshold of {percent}%, for at least "
            f"{ERROR_RATE_FOR}. llm:requests:rate5m shows the statuses by "
            "feature and region.",
        },
    )


def _cost_per_1k_alert(thresholds: Thresholds) -> Rule:
    ratio = _number(thresholds.cost_ratio)
    last_week = (
        "{{ with printf `llm:cost_per_1k_requests:1h{feature_name=%q} offset 1w` "
        '$labels.feature_name | query }}{{ . | first | value | printf "%.4g" }}'
        "{{ end }}"
    )
    return Rule(
        "LLMCostPer1kRequestsJump",
        "llm:cost_per_1k_requests:1h\n"
        f"> {ratio} * (llm:cost_per_1k_requests:1h offset 1w)",
        alert=True,
        duration=COST_PER_1K_FOR,
        labels={"severity": "warning"},
        annotations={
            "summary": "Cost per 1k requests of feature {{ $labels.feature_name }} "
            f"is more than {ratio} times that of the same hour last week",
            "description": "Over the last hour, 1,000 LLM calls of feature "
            '{{ $labels.feature_name }} cost {{ $value | printf "%.4g" }} USD, more '
            f"than {ratio} times the {last_week} USD of the same hour a week "
            f"earlier, for at least {COST_PER_1K_FOR}. A longer prompt, a more "
            "expensive model or fewer cache hits are common causes.",
        },
    )


def _budget_alerts(thresholds: Thresholds) -> tuple[Rule, ...]:
    if thresholds.default_daily_budget_usd is None and not thresholds.daily_budget_usd:
        return ()
    budget = (
        "{{ with printf `llm:cost_budget_usd:daily{feature_name=%q}` "
        '$labels.feature_name | query }}{{ . | first | value | printf "%.2f" }}'
        "{{ end }}"
    )
    alerts = []
    for name, rate, windows, duration, severity in (
        (
            "LLMCostBudgetFastBurn",
            thresholds.fast_burn_rate,
            FAST_BURN_WINDOWS,
            FAST_BURN_FOR,
            "critical",
        ),
        (
            "LLMCostBudgetSlowBurn",
            thresholds.slow_burn_rate,
            SLOW_BURN_WINDOWS,
            SLOW_BURN_FOR,
            "warning",
        ),
    ):
        long_window, short_window = windows
        hours = _number(round(24 / rate, 1))
        alerts.append(
            Rule(
                name,
                f"llm:cost_budget_burn:rate{long_window} > {_number(rate)}\n"
                f"and llm:cost_budget_burn:rate{short_window} > {_number(rate)}",
                alert=True,
                duration=duration,
                labels={"severity": severity},
                annotations={
                    "summary": "Feature {{ $labels.feature_name }} spends its "
                    f"daily LLM budget more than {_number(rate)} times too fast",
                    "description": "Over the last "
                    f"{long_window} and the last {short_window}, feature "
                    "{{ $labels.feature_name }} spent on LLM calls at "
                    "{{ $value | humanize }} times the even pace of its daily "
                    f"budget of {budget} USD. At more than {_number(rate)} times "
                    f"that pace the budget lasts less than {hours} hours.",
                },
            )
        )
    return tuple(alerts)


def render(thresholds: Thresholds) -> str:
    """Return the rule file for ``thresholds`` as YAML text."""
    lines = [
        "# Prometheus recording and alerting rules for the llmobs llm_* metrics.",
        "# Generated file: change the thresholds and regenerate it with",
        f"#   {thresholds.command_line()}",
        "# docs/metrics.md describes each rule.",
        "groups:",
    ]
    for group in build_rule_groups(thresholds):
        lines.append(f"  - name: {group.name}")
        lines.append("    rules:")
        for rule in group.rules:
            lines.extend(_render_rule(rule))
    return "\n".join(lines) + "\n"


def _render_rule(rule: Rule) -> list[str]:
    indent = " " * 8
    key = "alert" if rule.alert else "record"
    lines = [f"      - {key}: {rule.name}"]
    if "\n" in rule.expr:
        lines.append(f"{indent}expr: |-")
        lines.extend(f"{indent}  {line}" for line in rule.expr.split("\n"))
    else:
        lines.append(f"{indent}expr: {_yaml_scalar(rule.expr)}")
    if rule.duration is not None:
        lines.append(f"{indent}for: {rule.duration}")
    for section, values in (("labels", rule.labels), ("annotations", rule.annotations)):
        if values:
            lines.append(f"{indent}{section}:")
            lines.extend(
                f"{indent}  {name}: {_yaml_scalar(value)}"
                for name, value in values.items()
            )
    return lines


def _yaml_scalar(value: str) -> str:
    """Return ``value`` as a YAML string: plain where safe, else double-quoted."""
    if (
        _PLAIN_SCALAR.fullmatch(value)
        and not re.search(r": | #|\s$", value)
        and value.lower() not in _YAML_KEYWORDS
    ):
        return value
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value, ensure_ascii=False)


def _promql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _excluding(features: Mapping[str, float]) -> str:
    """Return a selector of every feature but ``features``, or ``""``."""
    if not features:
        return ""
    matchers = ", ".join(
        f"feature_name!={_promql_string(feature)}" for feature in sorted(features)
    )
    return f"{{{matchers}}}"


def _number(value: float) -> str:
    """Format a threshold as the shortest PromQL number literal."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _or_list(words: Sequence[str]) -> str:
    """Join ``words`` as "a, b or c"."""
    return ", ".join(words[:-1]) + f" or {words[-1]}"


def _pairs(values: Mapping[str, float]) -> str:
    return " ".join(
        shlex.quote(f"{feature}={_number(value)}")
        for feature, value in sorted(values.items())
    )


def _check_positive(name: str, value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"invalid {name} {value!r}: expected a number above 0")


def _check_feature_name(option: str, feature: str) -> None:
    if (
        not isinstance(feature, str)
        or not feature
        or len(feature) > MAX_FEATURE_NAME_LENGTH
        or _CONTROL_CHARACTERS.search(feature)
    ):
        raise ValueError(
            f"invalid feature name {feature!r} in {option}: expected 1 to "
            f"{MAX_FEATURE_NAME_LENGTH} printable characters, as in the "
            "feature_name label"
        )


# Configuration keys and the Thresholds fields they set.
_NUMBER_KEYS = (
    "p95_ms",
    "error_rate",
    "cost_ratio",
    "fast_burn_rate",
    "slow_burn_rate",
)
_MAPPING_KEYS = ("feature_p95_ms", "daily_budget_usd")


def load_config(path: Path) -> dict[str, Any]:
    """Read threshold settings from a TOML or JSON file.

    The keys are the ``Thresholds`` field names. ``default_daily_budget_usd``
    may be ``false`` to turn the default budget off.

    Raises:
        ValueError: The file is not valid TOML or JSON, or has an unknown key
            or a value of the wrong type.
    """
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"invalid configuration file {path}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"invalid configuration file {path}: expected a table")
    settings: dict[str, Any] = {}
    for key, value in data.items():
        if key in _NUMBER_KEYS:
            settings[key] = value
        elif key in _MAPPING_KEYS:
            if not isinstance(value, dict):
                raise ValueError(
                    f"invalid {key} in {path}: expected a table of feature "
                    "names and numbers"
                )
            settings[key] = dict(value)
        elif key == "default_daily_budget_usd":
            settings[key] = None if value is False else value
        else:
            known = sorted((*_NUMBER_KEYS, *_MAPPING_KEYS, "default_daily_budget_usd"))
            raise ValueError(
                f"unknown key {key!r} in {path}: expected one of {', '.join(known)}"
            )
    return settings


def _feature_value(text: str) -> tuple[str, float]:
    feature, separator, value = text.rpartition("=")
    if not separator or not feature:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected FEATURE=NUMBER, such as "
            "chat.assistant=50"
        )
    return feature, _float(value)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid number {text!r}: expected a number such as 8000 or 0.02"
        ) from None


def _optional_float(text: str) -> float | None:
    if text.lower() == "none":
        return None
    return _float(text)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python {SCRIPT}",
        description="Write the Prometheus recording and alerting rules for the "
        "llmobs llm_* metrics.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        type=Path,
        help="TOML or JSON file with threshold settings, keyed by the option "
        "names with underscores (p95_ms, daily_budget_usd, ...). Options given "
        "on the command line override it.",
    )
    _add_threshold_options(parser)

    parser.add_argument(
        "--output",
        metavar="PATH",
        default=str(DEFAULT_OUTPUT),
        help="file to write, or - for stdout (default: llm_rules.yml beside "
        "this script)",
    )

    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing, and exit with status 1 if the output file differs "
        "from the rules these options generate",
    )
    return parser


def _add_threshold_options(parser: argparse.ArgumentParser) -> None:
    defaults = Thresholds()

    parser.add_argument(
        "--p95-ms",
        metavar="MS",
        type=_float,
        help=f"p95 latency per feature in milliseconds above which an alert "
        f"fires after {LATENCY_FOR} (default: {_number(defaults.p95_ms)})",
    )

    parser.add_argument(
        "--feature-p95-ms",
        type=_feature_value,
        nargs="+",
        action="extend",
        metavar="FEATURE=MS",
        help="p95 latency threshold of one feature, replacing --p95-ms for it",
    )

    parser.add_argument(
        "--error-rate",
        metavar="RATIO",
        type=_float,
        help="share of a model's calls, between 0 and 1, ending in "
        f"{_or_list(ERROR_STATUSES)} above which an alert fires after "
        f"{ERROR_RATE_FOR} (default: {_number(defaults.error_rate)})",
    )

    parser.add_argument(
        "--cost-ratio",
        metavar="FACTOR",
        type=_float,
        help="factor by which a feature's cost per 1,000 requests over an hour "
        "must exceed the same hour a week earlier for an alert "
        f"(default: {_number(defaults.cost_ratio)})",
    )

    parser.add_argument(
        "--daily-budget-usd",
        type=_feature_value,
        nargs="+",
        action="extend",
        metavar="FEATURE=USD",
        help="daily LLM budget of one feature in US dollars",
    )

    parser.add_argument(
        "--default-daily-budget-usd",
        type=_optional_float,
        default=argparse.SUPPRESS,
        metavar="USD",
        help="daily budget in US dollars of each feature without its own, or "
        "'none' for no budget alerts on those features "
        f"(default: {_number(defaults.default_daily_budget_usd or 0)})",
    )

    parser.add_argument(
        "--fast-burn-rate",
        metavar="RATE",
        type=_float,
        help="spend, as a multiple of the daily budget's even pace, over 1 hour "
        "and 5 minutes above which a critical alert fires "
        f"(default: {_number(defaults.fast_burn_rate)})",
    )

    parser.add_argument(
        "--slow-burn-rate",
        metavar="RATE",
        type=_float,
        help="spend, as a multiple of the daily budget's even pace, over 6 hours "
        "and 30 minutes above which a warning fires "
        f"(default: {_number(defaults.slow_burn_rate)})",
    )


def thresholds_from_args(
    args: argparse.Namespace, config: Mapping[str, Any]
) -> Thresholds:
    """Merge configuration-file settings and command-line options.

    Raises:
        ValueError: A threshold is out of range or a feature name is invalid.
    """
    settings = dict(config)
    for key in _NUMBER_KEYS:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    # The option's default is SUPPRESS, so the attribute exists only when the
    # option was given, and "none" (None) can turn the default budget off.
    if hasattr(args, "default_daily_budget_usd"):
        settings["default_daily_budget_usd"] = args.default_daily_budget_usd
    for key in _MAPPING_KEYS:
        pairs = getattr(args, key) or []
        if pairs:
            settings[key] = {**settings.get(key, {}), **dict(pairs)}
    return Thresholds(**settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the rules and write or check them; return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else {}
        thresholds = thresholds_from_args(args, config)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    text = render(thresholds)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != text:
            sys.stderr.write(
                f"{output} is out of date; regenerate it with: "
                f"{thresholds.command_line()}\n"
            )
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
