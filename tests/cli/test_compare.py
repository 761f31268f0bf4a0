from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from llmobs_core.cli import main
from llmobs_core.cli.records import GROUP_FIELDS
from tests.cli._events import at, call_line

# Every test runs with each line parser, msgspec and json.
pytestmark = pytest.mark.usefixtures("line_parser")


def synthetic_calls(
    path: Path, *, slower_b: float, errors_b: float, seed: int = 11
) -> Path:
    """Write 1,500 calls per template: v3, then v4 from second 10,000 on.

    v4's latency is ``slower_b`` times v3's in distribution, and its error
    probability ``errors_b`` against v3's 0.02.
    """
    rng = random.Random(seed)
    lines = []
    for index in range(3_000):
        is_b = index % 2 == 1
        scale = slower_b if is_b else 1.0
        failed = rng.random() < (errors_b if is_b else 0.02)
        lines.append(
            call_line(
                timestamp=at(10_000 + index if is_b else index),
                prompt_template_id="v4" if is_b else "v3",
                latency_ms=rng.lognormvariate(6.0, 0.5) * scale,
                status="provider_error" if failed else "ok",
                input_tokens=rng.randint(100, 200),
                output_tokens=rng.randint(10, 50),
                cost_usd=0.001,
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def compare_rows(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> dict[str, dict[str, Any]]:
    assert main(["compare", *argv, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    return {row["figure"]: row for row in result["rows"]}


def test_compare_real_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_calls(tmp_path / "e.jsonl", slower_b=1.3, errors_b=0.06)
    rows = compare_rows(
        capsys, str(path), "--field", "prompt_template_id", "--a", "v3", "--b", "v4"
    )
    assert rows["calls"]["a"] == 1_500
    assert rows["calls"]["b"] == 1_500
    assert rows["latency_ms_p50"]["significant"] is True
    assert rows["latency_ms_p50"]["relative_change"] > 0.15
    assert rows["error_rate"]["significant"] is True
    assert rows["error_rate"]["test"] == "two-proportion-z"
    # Every call costs the same on both sides, so Welch's t-test has no
    # variance to test against.
    assert rows["cost_usd_per_call"]["test"] == "welch-t"
    assert rows["cost_usd_per_call"]["significant"] is None


def test_compare_no_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_calls(tmp_path / "e.jsonl", slower_b=1.0, errors_b=0.02)
    rows = compare_rows(
        capsys, str(path), "--field", "prompt_template_id", "--a", "v3", "--b", "v4"
    )
    assert rows["latency_ms_p50"]["significant"] is False
    assert rows["latency_ms_p95"]["significant"] is False
    assert rows["error_rate"]["significant"] is False


def usage_calls(path: Path, *, tokens_b: float, seed: int) -> Path:
    """Write 2,000 calls per template, v3 and v4, with usage and cost.

    v4's input and output tokens are ``tokens_b`` times v3's in distribution,
    and each call costs in proportion to its tokens.
    """
    rng = random.Random(seed)
    lines = []
    for index in range(4_000):
        is_b = index % 2 == 1
        scale = tokens_b if is_b else 1.0
        input_tokens = round(rng.lognormvariate(6.0, 0.8) * scale)
        output_tokens = round(rng.lognormvariate(4.0, 0.6) * scale)
        lines.append(
            call_line(
                timestamp=at(index),
                prompt_template_id="v4" if is_b else "v3",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=(input_tokens * 0.15 + output_tokens * 0.6) / 1e6,
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


USAGE_FIGURES = (
    "tokens_per_call",
    "input_tokens_per_call",
    "output_tokens_per_call",
    "cost_usd_per_call",
)


def test_compare_flags_token_and_cost_shift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = usage_calls(tmp_path / "e.jsonl", tokens_b=1.15, seed=6)
    rows = compare_rows(
        capsys, str(path), "--field", "prompt_template_id", "--a", "v3", "--b", "v4"
    )
    for figure in USAGE_FIGURES:
        assert rows[figure]["test"] == "welch-t", figure
        assert rows[figure]["significant"] is True, figure
        assert rows[figure]["relative_change"] > 0.05, figure
    assert rows["latency_ms_p50"]["significant"] is None


def test_compare_same_token_distribution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = usage_calls(tmp_path / "e.jsonl", tokens_b=1.0, seed=6)
    rows = compare_rows(
        capsys, str(path), "--field", "prompt_template_id", "--a", "v3", "--b", "v4"
    )
    for figure in USAGE_FIGURES:
        assert rows[figure]["test"] == "welch-t", figure
        assert rows[figure]["p_value"] > 0.01, figure
        assert rows[figure]["significant"] is False, figure


def test_compare_table_flags_token_shift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = usage_calls(tmp_path / "e.jsonl", tokens_b=1.15, seed=6)
    argv = [str(path), "--field", "prompt_template_id", "--a", "v3", "--b", "v4"]
    assert main(["compare", *argv]) == 0
    output = capsys.readouterr().out
    lines = output.splitlines()
    for figure in USAGE_FIGURES:
        row = next(line for line in lines if line.startswith(figure + " "))
        assert row.endswith("*"), row
    assert "tokens and cost per call: Welch's t-test" in output


def test_compare_split_at_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_calls(tmp_path / "e.jsonl", slower_b=1.3, errors_b=0.02)
    rows = compare_rows(capsys, str(path), "--after", at(5_000).isoformat())
    assert rows["calls"]["a"] == 1_500
    assert rows["calls"]["b"] == 1_500
    assert rows["latency_ms_p50"]["significant"] is True


def test_compare_gap_between_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_calls(tmp_path / "e.jsonl", slower_b=1.0, errors_b=0.02)
    rows = compare_rows(
        capsys,
        str(path),
        "--before",
        at(1_000).isoformat(),
        "--after",
        at(11_000).isoformat(),
    )
    assert rows["calls"]["a"] == 500
    assert rows["calls"]["b"] == 1_000


def test_compare_table_flags_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = synthetic_calls(tmp_path / "e.jsonl", slower_b=1.3, errors_b=0.02)
    argv = [str(path), "--field", "prompt_template_id", "--a", "v3", "--b", "v4"]
    assert main(["compare", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["v3", "v4", "change", "p-value"]
    latency = next(line for line in lines if line.startswith("latency_ms_p50"))
    assert latency.endswith("*")
    tokens = next(line for line in lines if line.startswith("tokens_per_call"))
    assert not tokens.endswith("*")


def test_compare_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = synthetic_calls(tmp_path / "e.jsonl", slower_b=1.0, errors_b=0.02)
    argv = ["--field", "prompt_template_id", "--a", "v3", "--b", "v4"]
    assert main(["compare", str(path), *argv, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "figure,a,b,change,relative_change,test,p_value,significant"
    assert lines[1].startswith("calls,1500,1500,0,")
    rows = {row["figure"]: row for row in csv.DictReader(lines)}
    assert rows["input_tokens_per_call"]["test"] == "welch-t"
    assert rows["input_tokens_per_call"]["significant"] == "False"
    assert float(rows["output_tokens_per_call"]["p_value"]) > 0.01


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "pass either --field"),
        (["--field", "model", "--a", "x"], "must be given together"),
        (
            [
                "--field",
                "model",
                "--a",
                "x",
                "--b",
                "y",
                "--after",
                "2026-01-01T00:00:00Z",
            ],
            "pass either --field",
        ),
        (
            ["--before", "2026-03-02T00:00:00Z", "--after", "2026-03-01T00:00:00Z"],
            "earlier than --before",
        ),
    ],
)
def test_compare_invalid_sides(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(call_line() + "\n")
    assert main(["compare", str(path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_compare_invalid_alpha(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(call_line() + "\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(path), "--after", at(0).isoformat(), "--alpha", "5"])
    assert exit_info.value.code == 2
    assert "invalid alpha '5'" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["tenant_id", "nosuch", "exp"])
def test_compare_invalid_field(
    tmp_path: Path, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(call_line(extra={"exp": "x"}) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(path), "--field", field, "--a", "x", "--b", "y"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid field {field!r}" in err
    assert f"use one of {', '.join(GROUP_FIELDS)}" in err


@pytest.mark.parametrize("field", GROUP_FIELDS)
def test_compare_accepts_by_fields(
    tmp_path: Path, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # variant is not a field of the event, so it is read from extra.
    lines = [
        call_line(
            **({"extra": {field: value}} if field == "variant" else {field: value})
        )
        for value in ("x", "y", "y")
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = compare_rows(capsys, str(path), "--field", field, "--a", "x", "--b", "y")
    assert rows["calls"]["a"] == 1
    assert rows["calls"]["b"] == 2


def test_compare_equal_sides_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(call_line(feature_name="f1") + "\n")
    argv = ["--field", "feature_name", "--a", "f1", "--b", "f1"]
    assert main(["compare", str(path), *argv]) == 2
    captured = capsys.readouterr()
    assert "--a and --b are both 'f1'" in captured.err
    assert captured.out == ""


def test_compare_empty_side_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(call_line(feature_name="f1") + "\n")
    argv = ["--field", "feature_name", "--a", "f1", "--b", "f2"]
    rows = compare_rows(capsys, str(path), *argv)
    assert rows["calls"]["a"] == 1
    assert rows["calls"]["b"] == 0
    assert rows["latency_ms_p50"]["b"] is None
    assert main(["compare", str(path), *argv]) == 0
    err = capsys.readouterr().err
    assert "warning: side B (feature_name 'f2') has no calls" in err
    assert "side A" not in err


def test_compare_empty_time_side_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(call_line(timestamp=at(60)) + "\n")
    instant = at(0).isoformat()
    assert main(["compare", str(path), "--after", instant, "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert f"warning: side A (before {instant}) has no calls" in captured.err
    assert "side B" not in captured.err
    assert captured.out.startswith("figure,a,b,")


def test_compare_relative_change_overflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1.0 / 5e-324 is beyond the float range, so the relative change is null.
    lines = []
    for _ in range(3):
        lines.append(call_line(feature_name="a", cost_usd=5e-324))
        lines.append(call_line(feature_name="b", cost_usd=1.0))
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    argv = ["compare", str(path), "--field", "feature_name", "--a", "a", "--b", "b"]
    assert main([*argv, "--format", "json"]) == 0

    def reject(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    result = json.loads(capsys.readouterr().out, parse_constant=reject)
    cost = next(row for row in result["rows"] if row["figure"] == "cost_usd_per_call")
    assert cost["relative_change"] is None
    assert cost["change"] == 1.0
    assert main([*argv, "--format", "csv"]) == 0
    assert "inf" not in capsys.readouterr().out


def test_compare_table_escapes_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(call_line(feature_name="\x1b[2J") + "\n")
    argv = ["--field", "feature_name", "--a", "\x1b[2J", "--b", "other"]
    assert main(["compare", str(path), *argv]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.splitlines()[0].split()[0] == "\\x1b[2J"
