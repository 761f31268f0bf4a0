"""The Prometheus rules in deploy/prometheus: syntax, unit tests and generator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests._prometheus import (
    GENERATOR,
    RULES_DIR,
    RULES_FILE,
    load_generator,
    requires_promtool,
    run_promtool,
)

ALERTS = (
    "LLMLatencyP95High",
    "LLMErrorRateHigh",
    "LLMCostPer1kRequestsJump",
    "LLMCostBudgetFastBurn",
    "LLMCostBudgetSlowBurn",
)
UNIT_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def generate(tmp_path: Path, *args: str) -> Path:
    """Generate rules into ``tmp_path`` beside copies of the unit tests."""
    (tmp_path / "tests").mkdir(exist_ok=True)
    for test in UNIT_TESTS:
        shutil.copy(test, tmp_path / "tests" / test.name)
    output = tmp_path / "llm_rules.yml"
    result = run_generator("--output", str(output), *args)
    assert result.returncode == 0, result.stderr
    return output


@pytest.mark.prometheus
@requires_promtool
def test_committed_rules_pass_check() -> None:
    result = run_promtool("check", "rules", "--lint-fatal", RULES_FILE)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
@requires_promtool
def test_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no unit tests in deploy/prometheus/tests"

    result = run_promtool("test", "rules", *UNIT_TESTS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_has_unit_test() -> None:
    text = "\n".join(test.read_text(encoding="utf-8") for test in UNIT_TESTS)

    for alert in ALERTS:
        assert f"alertname: {alert}\n        exp_alerts: []" in text, alert
        assert f"alertname: {alert}\n        exp_alerts:\n" in text, alert


def test_every_alert_has_severity_and_annotations(generator: ModuleType) -> None:
    groups = generator.build_rule_groups(generator.Thresholds())
    alerts = [rule for group in groups for rule in group.rules if rule.alert]

    assert sorted({alert.name for alert in alerts}) == sorted(ALERTS)
    for alert in alerts:
        assert alert.labels.get("severity") in ("warning", "critical"), alert.name
        assert alert.annotations.get("summary"), alert.name
        assert alert.annotations.get("description"), alert.name
        assert alert.duration, alert.name


def test_defaults_reproduce_committed_file(tmp_path: Path) -> None:
    output = tmp_path / "llm_rules.yml"

    result = run_generator("--output", str(output))

    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == RULES_FILE.read_bytes()


def test_check_option_accepts_committed_file() -> None:
    result = run_generator("--check")

    assert result.returncode == 0, result.stderr


def test_check_option_rejects_other_thresholds() -> None:
    result = run_generator("--check", "--p95-ms", "5000")

    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert "--p95-ms 5000" in result.stderr


def test_parameters_change_thresholds(tmp_path: Path) -> None:
    output = generate(
        tmp_path,
        "--p95-ms",
        "5000",
        "--error-rate",
        "0.05",
        "--cost-ratio",
        "3",
        "--fast-burn-rate",
        "10",
        "--slow-burn-rate",
        "1.5",
        "--default-daily-budget-usd",
        "250",
    )
    text = output.read_text(encoding="utf-8")

    assert "llm:latency_ms:p95_5m > 5000\n" in text
    assert "llm:error_ratio:rate5m > 0.05\n" in text
    assert "> 3 * (llm:cost_per_1k_requests:1h offset 1w)" in text
    assert "llm:cost_budget_burn:rate1h > 10\n" in text
    assert "llm:cost_budget_burn:rate6h > 1.5\n" in text
    assert "llm:cost_usd:rate6h * 0 + 250\n" in text
    assert "More than 5% of the LLM calls" in text
    assert "> 8000" not in text


def test_feature_options_add_rules(tmp_path: Path) -> None:
    output = generate(
        tmp_path,
        "--feature-p95-ms",
        "chat.assistant=30000",
        "--daily-budget-usd",
        "chat.assistant=50",
        'odd "name"=20',
    )
    text = output.read_text(encoding="utf-8")

    assert 'llm:latency_ms:p95_5m{feature_name="chat.assistant"} > 30000\n' in text
    assert 'or llm:latency_ms:p95_5m{feature_name!="chat.assistant"} > 8000' in text
    assert text.count("alert: LLMLatencyP95High") == 1
    assert (
        'above {{ if eq $labels.feature_name "chat.assistant" }}30000'
        "{{ else }}8000{{ end }} ms"
    ) in text
    assert 'llm:cost_usd:rate6h{feature_name="chat.assistant"} * 0 + 50' in text
    assert 'llm:cost_usd:rate6h{feature_name="odd \\"name\\""} * 0 + 20' in text
    assert (
        'llm:cost_usd:rate6h{feature_name!="chat.assistant", '
        'feature_name!="odd \\"name\\""} * 0 + 100'
    ) in text


@pytest.mark.prometheus
@requires_promtool
def test_other_rules_pass_check(tmp_path: Path) -> None:
    output = generate(
        tmp_path,
        "--feature-p95-ms",
        "chat.assistant=30000",
        'odd "name"=3000',
        "--daily-budget-usd",
        "chat.assistant=50",
        'odd "name"=20',
        "--default-daily-budget-usd",
        "none",
    )

    result = run_promtool("check", "rules", "--lint-fatal", output)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@requires_promtool
def test_unit_tests_fail_on_other_thresholds(tmp_path: Path) -> None:
    # Thresholds above every bad series: each alert's firing case must fail.
    generate(
        tmp_path,
        "--p95-ms",
        "25000",
        "--error-rate",
        "0.05",
        "--cost-ratio",
        "4",
        "--fast-burn-rate",
        "9",
        "--slow-burn-rate",
        "5",
    )
    tests = sorted((tmp_path / "tests").glob("*.yml"))

    result = run_promtool("test", "rules", *tests)

    assert result.returncode != 0
    failures = result.stdout + result.stderr
    for alert in ALERTS:
        assert f"alertname: {alert}," in failures, alert


FEATURE_THRESHOLD_TEST = Path(__file__).parent / "data" / "feature_thresholds.yml"


@pytest.mark.prometheus
@requires_promtool
def test_feature_thresholds_fire(tmp_path: Path) -> None:
    generate(
        tmp_path,
        "--feature-p95-ms",
        "nutrition.coach=2000",
        "--daily-budget-usd",
        "nutrition.coach=5",
    )
    test = tmp_path / FEATURE_THRESHOLD_TEST.name
    shutil.copy(FEATURE_THRESHOLD_TEST, test)

    result = run_promtool("test", "rules", test)

    assert result.returncode == 0, result.stdout + result.stderr


def test_config_file_sets_thresholds(tmp_path: Path) -> None:
    config = tmp_path / "thresholds.toml"
    config.write_text(
        "p95_ms = 6000\n"
        "error_rate = 0.01\n"
        "default_daily_budget_usd = false\n"
        "[daily_budget_usd]\n"
        '"chat.assistant" = 40\n',
        encoding="utf-8",
    )
    output = tmp_path / "llm_rules.yml"

    result = run_generator(
        "--config", str(config), "--error-rate", "0.03", "--output", str(output)
    )

    assert result.returncode == 0, result.stderr
    text = output.read_text(encoding="utf-8")
    assert "llm:latency_ms:p95_5m > 6000\n" in text
    assert "llm:error_ratio:rate5m > 0.03\n" in text
    assert 'expr: llm:cost_usd:rate6h{feature_name="chat.assistant"} * 0 + 40\n' in (
        text
    )
    assert "--default-daily-budget-usd none" in text


def test_json_config_matches_options(tmp_path: Path) -> None:
    config = tmp_path / "thresholds.json"
    config.write_text(
        json.dumps({"p95_ms": 5000, "daily_budget_usd": {"chat.assistant": 50}}),
        encoding="utf-8",
    )
    from_file = tmp_path / "from_file.yml"
    from_options = tmp_path / "from_options.yml"

    first = run_generator("--config", str(config), "--output", str(from_file))
    second = run_generator(
        "--p95-ms",
        "5000",
        "--daily-budget-usd",
        "chat.assistant=50",
        "--output",
        str(from_options),
    )

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert from_file.read_text() == from_options.read_text()


def test_no_budget_leaves_out_budget_rules(tmp_path: Path) -> None:
    output = generate(tmp_path, "--default-daily-budget-usd", "none")
    text = output.read_text(encoding="utf-8")

    assert "llm:cost_budget_usd:daily" not in text
    assert "LLMCostBudgetFastBurn" not in text
    assert "LLMCostPer1kRequestsJump" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--p95-ms", "0"], "invalid p95_ms 0.0"),
        (["--error-rate", "1.5"], "invalid error_rate 1.5"),
        (["--p95-ms", "fast"], "invalid number 'fast'"),
        (["--daily-budget-usd", "chat.assistant"], "expected FEATURE=NUMBER"),
        (["--daily-budget-usd", "chat.assistant=-1"], "above 0"),
        (["--feature-p95-ms", "x" * 65 + "=100"], "invalid feature name"),
        (["--fast-burn-rate", "nan"], "invalid fast_burn_rate nan"),
    ],
)
def test_invalid_options_rejected(args: list[str], message: str) -> None:
    result = run_generator("--output", "-", *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_unknown_config_key_rejected(tmp_path: Path) -> None:
    config = tmp_path / "thresholds.toml"
    config.write_text("p95 = 5000\n", encoding="utf-8")

    result = run_generator("--config", str(config), "--output", "-")

    assert result.returncode == 2
    assert "unknown key 'p95'" in result.stderr
