from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from llmobs_core.cli import main
from llmobs_core.cli import report as report_module
from tests.cli._events import at, call_line, feedback_line

# Every test runs with each line parser, msgspec and json.
pytestmark = pytest.mark.usefixtures("line_parser")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--format", "json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def rows_by_group(result: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return {
        ",".join(row["group"].values()): row for row in result["groups"][index]["rows"]
    }


@pytest.fixture
def events(tmp_path: Path) -> Path:
    lines = [
        call_line(
            request_id="r1",
            feature_name="chat",
            prompt_template_id="v3",
            latency_ms=100.0,
            input_tokens=100,
            output_tokens=10,
            cost_usd=0.002,
        ),
        call_line(
            request_id="r2",
            feature_name="chat",
            prompt_template_id="v4",
            latency_ms=300.0,
            status="timeout",
            cost_usd=None,
        ),
        call_line(
            request_id="r3",
            feature_name="search",
            model="gpt-4o",
            prompt_template_id="v3",
            latency_ms=50.0,
            time_to_first_token_ms=20.0,
            streaming=True,
            input_tokens=40,
            output_tokens=4,
            cost_usd=0.01,
            extra={"variant": "b"},
        ),
        call_line(
            request_id="r4",
            feature_name="search",
            latency_ms=10.0,
            status="ok",
            cache_hit=True,
            cost_usd=0.0,
            cost_source="cache-hit",
        ),
    ]
    return write_lines(tmp_path / "events.jsonl", lines)


def test_report_totals(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    totals = run_json(capsys, "report", str(events))["totals"]
    assert totals["calls"] == 4
    assert totals["errors"] == 1
    assert totals["error_rate"] == 0.25
    assert totals["cache_hits"] == 1
    assert totals["input_tokens"] == 140
    assert totals["output_tokens"] == 14
    assert totals["cost_usd"] == pytest.approx(0.012)
    assert totals["cost_usd_per_1k_calls"] == pytest.approx(3.0)
    assert totals["unpriced_calls"] == 1
    assert totals["statuses"] == {"ok": 3, "timeout": 1}
    assert totals["latency_ms_p99"] == pytest.approx(300.0, rel=0.01)
    assert totals["time_to_first_token_ms_p50"] == pytest.approx(20.0, rel=0.01)


def test_report_by_feature(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "report", str(events), "--by", "feature_name")
    rows = rows_by_group(result)
    assert rows["chat"]["calls"] == 2
    assert rows["chat"]["error_rate"] == 0.5
    assert rows["search"]["calls"] == 2
    assert rows["search"]["cost_usd"] == pytest.approx(0.01)
    assert result["groups"][0]["by"] == ["feature_name"]


def test_report_several_groupings(
    events: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_json(
        capsys, "report", str(events), "--by", "model", "--by", "feature_name,model"
    )
    assert set(rows_by_group(result, 0)) == {"gpt-4o-mini", "gpt-4o"}
    combined = rows_by_group(result, 1)
    assert set(combined) == {"chat,gpt-4o-mini", "search,gpt-4o", "search,gpt-4o-mini"}


def test_report_grouping_given_twice(
    events: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_json(capsys, "report", str(events), "--by", "model", "--by", "model")
    assert len(result["groups"]) == 1
    assert rows_by_group(result)["gpt-4o-mini"]["calls"] == 3


def test_report_merges_cells_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(9)
    lines = []
    for index in range(300):
        lines.append(
            call_line(
                request_id=f"r{index}",
                feature_name=rng.choice(["chat", "search", "coach", None]),
                model=rng.choice(["gpt-4o", "gpt-4o-mini"]),
                latency_ms=rng.lognormvariate(5.0, 1.0),
                input_tokens=rng.randint(1, 100),
                cost_usd=rng.choice([None, 0.25, 0.5]),
            )
        )
        if index % 7 == 0:
            lines.append(feedback_line(f"r{index}", "rating", index % 5))
    path = write_lines(tmp_path / "cells.jsonl", lines)
    argv = ["report", str(path), "--by", "feature_name", "--by", "model,feature_name"]
    expected = run_json(capsys, *argv)

    # Merging cells into the tables after every few calls gives the same report.
    monkeypatch.setattr(report_module, "MAX_CELLS", 2)
    monkeypatch.setattr(report_module, "MAX_CELL_CALLS", 7)
    assert run_json(capsys, *argv) == expected
    assert expected["totals"]["calls"] == 300
    assert expected["feedback"] == {"events": 43, "unmatched": 0}


def test_report_variant_from_extra(
    events: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = rows_by_group(run_json(capsys, "report", str(events), "--by", "variant"))
    assert rows["b"]["calls"] == 1
    assert rows["(none)"]["calls"] == 3


def test_report_top_by_cost(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "report", str(events), "--by", "model", "--top", "1")
    rows = result["groups"][0]["rows"]
    assert [row["group"]["model"] for row in rows] == ["gpt-4o"]
    assert result["groups"][0]["group_count"] == 2


def test_report_table_aligned(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(events), "--by", "feature_name"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Totals\n")
    assert "By feature_name\n" in out
    table = out.split("By feature_name\n")[1].strip().splitlines()
    assert table[0].split()[:3] == ["feature_name", "calls", "errors"]
    assert len({len(line) for line in table}) == 1, "rows are not aligned"
    chat = next(line for line in table if line.startswith("chat"))
    assert "50.00%" in chat


def test_report_csv(events: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(events), "--by", "feature_name", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(row["by"], row["group"]) for row in rows] == [
        ("total", ""),
        ("feature_name", "search"),
        ("feature_name", "chat"),
    ]
    assert rows[0]["calls"] == "4"
    assert float(rows[2]["error_rate"]) == 0.5


def test_report_skips_malformed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = call_line()
    missing = json.loads(good)
    del missing["model"]
    wrong = json.loads(good)
    wrong["latency_ms"] = "fast"
    naive = json.loads(good)
    naive["timestamp"] = "2026-03-01T00:00:00"

    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            good,
            "{not json",
            "[1, 2]",
            json.dumps(missing),
            json.dumps(wrong),
            "",
            json.dumps(naive),
        ],
    )
    result = run_json(capsys, "report", str(path))

    assert result["totals"]["calls"] == 1
    skipped = result["skipped_lines"]
    assert skipped["count"] == 5
    assert skipped["reasons"]["invalid JSON"] == 1
    assert skipped["reasons"]["missing field model"] == 1
    assert skipped["reasons"]["latency_ms is not a number >= 0"] == 1
    assert skipped["reasons"]["timestamp has no UTC offset"] == 1
    assert skipped["examples"][0] == f"{path}:2: invalid JSON"
    assert main(["report", str(path)]) == 0
    err = capsys.readouterr().err
    assert "skipped 5 malformed lines" in err


def test_report_reads_older_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = {
        "schema_version": "1.0",
        "timestamp": "2025-06-01T10:00:00Z",
        "request_id": "old-1",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "feature_name": "chat",
        "model": "gpt-4o-mini",
        "latency_ms": 250,
        "status": "ok",
    }
    path = write_lines(tmp_path / "old.jsonl", [json.dumps(old), call_line()])
    result = run_json(capsys, "report", str(path), "--by", "prompt_template_id")
    assert result["skipped_lines"]["count"] == 0
    assert result["totals"]["calls"] == 2
    assert result["totals"]["input_tokens"] == 0
    assert result["totals"]["unpriced_calls"] == 2
    assert rows_by_group(result)["(none)"]["calls"] == 2


def test_report_gzip(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(events.read_bytes()))
    result = run_json(capsys, "report", str(packed), str(events))
    assert result["totals"]["calls"] == 8


def test_report_stdin(
    events: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = events.read_text() + feedback_line("r1", "hallucination", 1) + "\n"
    stdin = io.TextIOWrapper(io.BytesIO(lines.encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    result = run_json(capsys, "report", "-", "--by", "feature_name")
    assert result["totals"]["calls"] == 4
    assert rows_by_group(result)["chat"]["feedback"]["hallucination"]["count"] == 1


def test_report_time_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [call_line(timestamp=at(seconds)) for seconds in (0, 60, 120, 180)]
    path = write_lines(tmp_path / "timed.jsonl", lines)
    since, until = at(60).isoformat(), at(180).isoformat()
    result = run_json(capsys, "report", str(path), "--since", since, "--until", until)
    assert result["totals"]["calls"] == 2
    result = run_json(capsys, "report", str(path), "--since", "2026-03-01T00:02:00Z")
    assert result["totals"]["calls"] == 2


def test_report_feedback_join(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feedback = write_lines(
        tmp_path / "feedback.jsonl",
        [
            feedback_line("r1", "hallucination", 1),
            feedback_line("r2", "hallucination", 1),
            feedback_line("r3", "hallucination", 1),
            feedback_line("r3", "rating", 4),
            feedback_line("r1", "rating", 2),
            feedback_line("unknown", "rating", 5),
        ],
    )
    result = run_json(
        capsys, "report", str(feedback), str(events), "--by", "prompt_template_id"
    )
    rows = rows_by_group(result)
    assert rows["v3"]["feedback"]["hallucination"] == {"count": 2, "mean": 1.0}
    assert rows["v3"]["feedback"]["rating"] == {"count": 2, "mean": 3.0}
    assert rows["v4"]["feedback"] == {"hallucination": {"count": 1, "mean": 1.0}}
    assert result["feedback"] == {"events": 6, "unmatched": 1}
    assert (
        main(["report", str(events), str(feedback), "--by", "prompt_template_id"]) == 0
    )
    out = capsys.readouterr().out
    assert "hallucination n/mean" in out


def test_report_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "no-such-file.jsonl"]) == 1
    assert "'no-such-file.jsonl' not found" in capsys.readouterr().err


def test_report_truncated_gzip(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packed = tmp_path / "cut.jsonl.gz"
    packed.write_bytes(gzip.compress(events.read_bytes())[:-12])
    assert main(["report", str(packed)]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--by", "colour"], "invalid --by field 'colour'"),
        (["--top", "0"], "invalid count '0'"),
        (["--since", "yesterday"], "invalid timestamp 'yesterday'"),
        (["--since", "2026-01-01T00:00:00"], "has no UTC offset"),
    ],
)
def test_report_invalid_arguments(
    events: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(events), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_report_module_subprocess(events: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmobs_core.cli",
            "report",
            str(events),
            "--by",
            "model",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "By model" in result.stdout
    assert "gpt-4o-mini" in result.stdout


def test_report_scale_benchmark_runs() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.report_scale", "--lines", "500"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| 500 |" in result.stdout


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            '{"timestamp":"2026-03-01T10:00:03Z","model":"m","latency_ms":NaN,"status":"ok"}',
            id="nan-latency",
        ),
        pytest.param(
            '{"timestamp":"2026-03-01T10:00:03Z","model":"m","latency_ms":1,'
            '"status":"ok","cost_usd":Infinity}',
            id="infinite-cost",
        ),
        pytest.param(
            '{"timestamp":"2026-03-01T10:00:03Z","model":"m","latency_ms":1,'
            '"status":"ok","cost_usd":1' + "0" * 400 + "}",
            id="huge-integer",
        ),
    ],
)
def test_report_skips_non_finite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    good = (
        '{"timestamp":"2026-03-01T10:00:00Z","model":"m","latency_ms":5,"status":"ok"}'
    )
    path = write_lines(tmp_path / "events.jsonl", [good, line])

    result = run_json(capsys, "report", str(path))

    assert result["skipped_lines"]["count"] == 1
    assert result["totals"]["calls"] == 1


@pytest.mark.parametrize("output", ["table", "csv", "html"])
def test_lone_surrogate_in_group_is_printed_escaped(
    tmp_path: Path, output: str
) -> None:
    # A JSON string may hold a lone surrogate, which UTF-8 cannot encode.
    line = call_line(model="m").replace('"model":"m"', '"model":"\\ud800m"')
    path = tmp_path / "events.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    html = tmp_path / "report.html"
    argv = ["report", str(path), "--by", "model"]
    argv += ["--html", str(html)] if output == "html" else ["--format", output]
    result = subprocess.run(
        [sys.executable, "-m", "llmobs_core.cli", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"},
    )
    assert result.returncode == 0, result.stderr
    written = html.read_text(encoding="utf-8") if output == "html" else result.stdout
    assert "\\ud800m" in written


def strict_json(text: str) -> Any:
    """Parse ``text`` as JSON, rejecting NaN and Infinity as invalid."""

    def reject(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


MINIMAL_CALL = (
    '{"timestamp":"2026-03-01T10:00:00Z","model":"m","latency_ms":5,"status":"ok"'
)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("[" * 100_000, id="deep-array"),
        pytest.param(
            MINIMAL_CALL + ',"extra":' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}",
            id="deep-extra",
        ),
    ],
)
@pytest.mark.parametrize("command", ["report", "compare"])
def test_deeply_nested_line_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, command: str
) -> None:
    path = write_lines(tmp_path / "deep.jsonl", [call_line(), line])
    argv = [command, str(path), "--format", "json"]
    if command == "compare":
        argv += ["--after", at(0).isoformat()]

    assert main(argv) == 0

    skipped = strict_json(capsys.readouterr().out)["skipped_lines"]
    assert skipped["count"] == 1
    assert skipped["reasons"] == {"JSON nested too deeply": 1}


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_corrupt_gzip_cannot_be_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    stdin: bool,
) -> None:
    # A gzip header followed by data that is not deflate-compressed.
    corrupt = b"\x1f\x8b\x08\x00garbagegarbage"
    path = tmp_path / "bad.gz"
    path.write_bytes(corrupt)
    name = str(path)
    if stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(corrupt)))
        name = "-"
    argv = [command, name]
    if command == "compare":
        argv += ["--after", at(0).isoformat()]

    assert main(argv) == 1

    err = capsys.readouterr().err
    assert "cannot read" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("field", "maximum"),
    [
        ("latency_ms", "1_000_000_000"),
        ("time_to_first_token_ms", "1_000_000_000"),
        ("cost_usd", "1_000_000"),
        ("input_tokens", "1_000_000_000_000"),
        ("output_tokens", "1_000_000_000_000"),
    ],
)
def test_report_skips_values_above_maximum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, maximum: str
) -> None:
    limit = int(maximum)
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            MINIMAL_CALL + f',"{field}":{limit}}}',
            MINIMAL_CALL + f',"{field}":{limit + 1}}}',
            # An integer literal, so that counts are not rejected as floats.
            MINIMAL_CALL + f',"{field}":1{"0" * 300}}}',
        ],
    )

    result = strict_json(run_text(capsys, "report", str(path), "--format", "json"))

    assert result["totals"]["calls"] == 1
    assert result["skipped_lines"]["reasons"] == {f"{field} is above {limit:,}": 2}


def test_report_overflowing_costs_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = call_line(feature_name="chat", cost_usd=1e308)
    path = write_lines(tmp_path / "events.jsonl", [line, line, call_line()])
    argv = ["report", str(path), "--by", "feature_name"]

    result = strict_json(run_text(capsys, *argv, "--format", "json"))
    csv_text = run_text(capsys, *argv, "--format", "csv")

    assert result["totals"]["calls"] == 1
    assert result["totals"]["cost_usd"] == 0.0
    assert "inf" not in csv_text


def run_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_report_overflowing_feedback_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Feedback values have no bound, so their sum can overflow.
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            call_line(request_id="r1", feature_name="chat"),
            feedback_line("r1", "score", 1e308),
            feedback_line("r1", "score", 1e308),
        ],
    )
    argv = ["report", str(path), "--by", "feature_name"]

    result = strict_json(run_text(capsys, *argv, "--format", "json"))
    rows = list(csv.DictReader(io.StringIO(run_text(capsys, *argv, "--format", "csv"))))
    table = run_text(capsys, *argv)

    assert rows_by_group(result)["chat"]["feedback"]["score"] == {
        "count": 2,
        "mean": None,
    }
    assert rows[1]["feedback.score.mean"] == ""
    assert rows[1]["feedback.score.count"] == "2"
    assert "2 / -" in table
    assert "inf" not in table


def test_report_directory_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"input {str(tmp_path)!r} is a directory" in err
    assert "not found" not in err


def test_report_pipe_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    assert main(["report", str(fifo)]) == 1
    assert f"input {str(fifo)!r} is not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("since", "until"),
    [
        pytest.param(at(60), at(0), id="since-after-until"),
        pytest.param(at(60), at(60), id="equal"),
    ],
)
@pytest.mark.parametrize("command", ["report", "compare"])
def test_empty_time_window_rejected(
    events: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    since: datetime,
    until: datetime,
) -> None:
    argv = [command, str(events), "--since", since.isoformat()]
    argv += ["--until", until.isoformat()]
    if command == "compare":
        argv += ["--after", at(30).isoformat()]

    assert main(argv) == 2

    captured = capsys.readouterr()
    assert (
        f"--until {until.isoformat()} is not later than --since {since.isoformat()}"
        in captured.err
    )
    assert captured.out == ""


CONTROL_VALUES = {
    "escape": ("chat\x1b[31m", "chat\\x1b[31m"),
    "nul": ("a\x00b", "a\\x00b"),
    "newline": ("two\nlines\r", "two\\x0alines\\x0d"),
    "delete": ("del\x7f", "del\\x7f"),
    "c1": ("csi\x9b2J", "csi\\x9b2J"),
    "bidi": ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
}


def has_control_character(text: str) -> bool:
    return any(
        ord(char) < 0x20
        or 0x7F <= ord(char) < 0xA0
        or 0x2066 <= ord(char) <= 0x2069
        or 0x202A <= ord(char) <= 0x202E
        for char in text
        if char != "\n"
    )


def test_report_table_escapes_controls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        call_line(request_id=name, feature_name=raw)
        for name, (raw, _escaped) in CONTROL_VALUES.items()
    ]
    lines.append(feedback_line("escape", "score\x1b]0;title\x07", 1))
    path = write_lines(tmp_path / "events.jsonl", lines)

    out = run_text(capsys, "report", str(path), "--by", "feature_name")

    assert not has_control_character(out)
    for _raw, escaped in CONTROL_VALUES.values():
        assert escaped in out
    assert "score\\x1b]0;title\\x07 n/mean" in out
    table = out.split("By feature_name\n")[1].split("\n\n")[0].splitlines()
    assert len(table) == 1 + len(CONTROL_VALUES)
    assert len({len(line) for line in table}) == 1, "rows are not aligned"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("chat", "chat"),
        ("a=b", "a=b"),
        # Quoted, so the carriage return does not end the row.
        ("a\rb", "a\rb"),
    ],
)
def test_report_csv_neutralizes_formulas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, cell: str
) -> None:
    path = write_lines(tmp_path / "events.jsonl", [call_line(feature_name=value)])

    out = run_text(
        capsys, "report", str(path), "--by", "feature_name", "--format", "csv"
    )

    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert rows[1]["group"] == cell
    assert rows[0]["group"] == ""


@pytest.mark.parametrize(
    ("variant", "group"),
    [
        pytest.param(["a"], '["a"]', id="array"),
        pytest.param(True, "true", id="boolean"),
        pytest.param(7, "7", id="integer"),
        pytest.param({"x": "é"}, '{"x":"é"}', id="object"),
    ],
)
def test_report_groups_non_string_variant_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: Any, group: str
) -> None:
    # The schema allows only strings in extra, but older or other writers
    # may put any JSON value there.
    line = MINIMAL_CALL + ',"extra":' + json.dumps({"variant": variant}) + "}"
    path = write_lines(tmp_path / "events.jsonl", [line])

    result = run_json(capsys, "report", str(path), "--by", "variant")

    assert list(rows_by_group(result)) == [group]


def test_report_format_has_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmobs_core.cli", "report", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    options = result.stdout.split("options:")[1]
    assert "--format {table,json,csv}" in options
    assert "output format: table" in options
