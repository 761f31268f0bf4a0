"""The Grafana dashboard in deploy/grafana: structure, PromQL syntax, metric names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._prometheus import (
    REPO_ROOT,
    promql_rules_file,
    requires_promtool,
    run_promtool,
)
from tests.deploy._promql import (
    DOCUMENTED_COUNTERS,
    DOCUMENTED_GAUGES,
    DOCUMENTED_HISTOGRAMS,
    GRAFANA_DURATIONS,
    LABEL_VALUES,
    LABELS,
    VARIABLE,
    exposed_series_names,
    label_names,
    metric_names,
    recording_rule_names,
    substitute_variables,
)

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "llmobs.json"


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return result


@pytest.fixture(scope="module")
def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (panel title and refId, expression) for every panel query."""
    found = []
    for panel in walk_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            found.append((f"{panel['title']} {target['refId']}", target["expr"]))
    return found


@pytest.fixture(scope="module")
def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Return the series selector of each query variable's label_values()."""
    selectors = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.fullmatch(variable["query"]["query"])
        assert match is not None, variable["query"]
        assert match.group(2) in LABELS
        selectors[variable["name"]] = match.group(1)
    return selectors


def test_metric_name_parser() -> None:
    expr = (
        'topk(5, sum by (feature_name) (increase(llm_cost_usd_total{model=~"a|b"}'
        "[30d] offset 1w)))\n/ ignoring (status) group_left () "
        "llm:cost_usd:rate1h * 1e3 + 0.95"
    )

    assert metric_names(expr) == {"llm_cost_usd_total", "llm:cost_usd:rate1h"}
    assert label_names(expr) == {"feature_name", "model", "status"}


def test_emitter_exposes_documented_series() -> None:
    expected = (
        {
            f"{name}{suffix}"
            for name in DOCUMENTED_COUNTERS
            for suffix in ("_total", "_created")
        }
        | {
            f"{name}{suffix}"
            for name in DOCUMENTED_HISTOGRAMS
            for suffix in ("_bucket", "_sum", "_count", "_created")
        }
        | DOCUMENTED_GAUGES
    )

    assert exposed_series_names() == expected


def test_dashboard_settings(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"]
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("feature", "model", "region"):
        assert variables[name]["type"] == "query", name
        assert variables[name]["includeAll"] is True, name
        assert variables[name]["allValue"] == ".*", name


def test_panels_use_datasource_variable(dashboard: dict[str, Any]) -> None:
    ids = []
    for panel in walk_panels(dashboard["panels"]):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "title",
    [
        "Top 5 features by cost, last 30 days",
        "p95 latency by model and region",
        "Token usage by feature",
        "Error rate by model and status",
        "Cost per 1k requests, now and a week earlier",
    ],
)
def test_required_panel_present(dashboard: dict[str, Any], title: str) -> None:
    titles = [panel["title"] for panel in walk_panels(dashboard["panels"])]

    assert title in titles


def test_top_features_query(expressions: list[tuple[str, str]]) -> None:
    exprs = dict(expressions)

    expr = exprs["Top 5 features by cost, last 30 days A"]
    assert expr.startswith("topk(5, sum by (feature_name) (increase(")
    assert "llm_cost_usd_total{" in expr
    assert expr.endswith("[30d])))")


def test_variables_are_defined(
    dashboard: dict[str, Any], expressions: list[tuple[str, str]]
) -> None:
    defined = {item["name"] for item in dashboard["templating"]["list"]}
    builtin = {name.lstrip("$") for name in GRAFANA_DURATIONS}
    queries = [variable["query"] for variable in dashboard["templating"]["list"]]
    texts = [expr for _, expr in expressions] + [str(query) for query in queries]

    for text in texts:
        for braced, plain in VARIABLE.findall(text):
            assert (braced or plain) in defined | builtin, text


def test_metric_names_are_emitted(
    expressions: list[tuple[str, str]], variable_queries: dict[str, str]
) -> None:
    known = exposed_series_names() | recording_rule_names()
    selectors = [(f"variable {name}", expr) for name, expr in variable_queries.items()]

    for where, expr in expressions + selectors:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= known, f"{where}: unknown metrics {sorted(names - known)}"


def test_label_names_are_emitted(
    expressions: list[tuple[str, str]], variable_queries: dict[str, str]
) -> None:
    selectors = [(f"variable {name}", expr) for name, expr in variable_queries.items()]

    for where, expr in expressions + selectors:
        unknown = label_names(expr) - LABELS
        assert not unknown, f"{where}: unknown labels {sorted(unknown)}"


@pytest.mark.prometheus
@requires_promtool
def test_expressions_parse(
    tmp_path: Path,
    expressions: list[tuple[str, str]],
    variable_queries: dict[str, str],
) -> None:
    exprs = [expr for _, expr in expressions] + list(variable_queries.values())
    rules = promql_rules_file(
        tmp_path / "dashboard_rules.yml",
        [substitute_variables(expr) for expr in exprs],
    )

    result = run_promtool("check", "rules", "--lint-fatal", rules)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@pytest.mark.prometheus
@requires_promtool
def test_parse_check_rejects_bad_expression(tmp_path: Path) -> None:
    rules = promql_rules_file(
        tmp_path / "bad_rules.yml", ['sum by (model) (rate(llm_requests_total{a="b"}))']
    )

    result = run_promtool("check", "rules", "--lint-fatal", rules)

    assert result.returncode != 0
