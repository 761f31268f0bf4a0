"""docs/metrics.md: every exposed metric is listed, and its PromQL examples parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._prometheus import (
    REPO_ROOT,
    promql_rules_file,
    requires_promtool,
    run_promtool,
)
from tests.deploy._promql import (
    exposed_series_names,
    metric_names,
    recording_rule_names,
)

METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"
_PROMQL_BLOCK = re.compile(r"```promql\n(.*?)```", re.DOTALL)


def doc_expressions() -> list[str]:
    """Return the expressions of the doc's promql blocks.

    Blank lines separate expressions; lines starting with # are comments.
    """
    text = METRICS_DOC.read_text(encoding="utf-8")
    expressions = []
    for block in _PROMQL_BLOCK.findall(text):
        for chunk in re.split(r"\n\s*\n", block):
            lines = [line for line in chunk.splitlines() if not line.startswith("#")]
            if any(line.strip() for line in lines):
                expressions.append("\n".join(lines))
    return expressions


def test_doc_lists_every_metric() -> None:
    text = METRICS_DOC.read_text(encoding="utf-8")

    for name in exposed_series_names():
        if name.endswith("_created"):
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{base}`" in text, name


def test_doc_names_known_metrics() -> None:
    known = exposed_series_names() | recording_rule_names()
    expressions = doc_expressions()

    assert len(expressions) >= 6
    for expr in expressions:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"unknown metrics {sorted(names - known)} in {expr}"


@pytest.mark.prometheus
@requires_promtool
def test_doc_expressions_parse(tmp_path: Path) -> None:
    expressions = doc_expressions()
    rules = promql_rules_file(tmp_path / "doc_rules.yml", expressions)

    result = run_promtool("check", "rules", "--lint-fatal", rules)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in result.stdout
