from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from llmobs_core.cli import main
from llmobs_core.cli.html import ChartData, render_cost_chart, render_latency_chart
from tests.cli._events import at, call_line

HOSTILE = "<script>alert(1)</script>"
CHROMIUM_TIMEOUT_SECONDS = 60


def write_events(path: Path) -> Path:
    lines = []
    for i in range(40):
        lines.append(
            call_line(
                request_id=f"r{i}",
                feature_name="chat" if i % 4 else HOSTILE,
                model="gpt-4o" if i % 2 else "gpt-4o-mini",
                latency_ms=100.0 + 10 * i,
                cost_usd=0.001,
                timestamp=at(60 * i),
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def report_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    events = write_events(tmp_path / "events.jsonl")
    output = tmp_path / "report.html"
    argv = ["report", str(events), "--by", "feature_name", "--by", "model"]
    assert main([*argv, "--html", str(output)]) == 0
    capsys.readouterr()
    return output


def test_html_file_written(report_path: Path) -> None:
    page = report_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<table>" in page
    assert "<svg" in page
    assert "<polyline" in page


def test_html_contains_table_values(report_path: Path) -> None:
    page = report_path.read_text(encoding="utf-8")
    for title in ("By feature_name", "By model", "p95 ms", "cost $"):
        assert f"{title}<" in page
    for group in ("chat", "gpt-4o", "gpt-4o-mini", "total"):
        assert f"<td>{group}</td>" in page
    assert '<td class="num">40</td>' in page  # calls in the totals row
    assert '<td class="num">0.0400</td>' in page  # cost $ of the totals row
    assert '<td class="num">0.0300</td>' in page  # cost $ of the chat group


def test_html_self_contained(report_path: Path) -> None:
    page = report_path.read_text(encoding="utf-8")
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()


def test_html_escapes_hostile_feature(report_path: Path) -> None:
    page = report_path.read_text(encoding="utf-8")
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_same_stdout_as_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_events(tmp_path / "events.jsonl")
    assert main(["report", str(events)]) == 0
    plain = capsys.readouterr().out
    assert main(["report", str(events), "--html", str(tmp_path / "r.html")]) == 0
    assert capsys.readouterr().out == plain


def test_html_respects_window_and_top(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_events(tmp_path / "events.jsonl")
    output = tmp_path / "report.html"
    argv = ["report", str(events), "--by", "feature_name", "--top", "1"]
    window = ["--since", at(0).isoformat(), "--until", at(60).isoformat()]
    assert main([*argv, *window, "--html", str(output)]) == 0
    capsys.readouterr()
    page = output.read_text(encoding="utf-8")
    assert '<td class="num">1</td>' in page  # one call in the window
    assert "&lt;script&gt;" in page  # the only feature in the window
    assert "<td>chat</td>" not in page


def test_html_without_calls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "empty.jsonl"
    events.write_text("")
    output = tmp_path / "report.html"
    assert main(["report", str(events), "--html", str(output)]) == 0
    capsys.readouterr()
    page = output.read_text(encoding="utf-8")
    assert "No calls in the window." in page


def test_html_unwritable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_events(tmp_path / "events.jsonl")
    output = tmp_path / "missing-directory" / "report.html"
    assert main(["report", str(events), "--html", str(output)]) == 1
    error = capsys.readouterr().err
    assert "failed to write the HTML report" in error
    assert str(output) in error


def test_html_single_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Calls at one instant all land in the first bucket.
    events = tmp_path / "events.jsonl"
    events.write_text(call_line(latency_ms=250.0) + "\n" + call_line() + "\n")
    output = tmp_path / "report.html"
    assert main(["report", str(events), "--html", str(output)]) == 0
    capsys.readouterr()
    page = output.read_text(encoding="utf-8")
    assert page.count("<circle") == 1
    assert "gpt-4o-mini: p95 " in page


def test_latency_chart_without_points() -> None:
    charts = ChartData(start=at(0))
    charts.latency["gpt-4o"] = {}
    assert render_latency_chart(charts) == "<p>No calls in the window.</p>"


def run_chromium(chromium: str, page: Path, profile: Path) -> tuple[str, str]:
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.as_uri(),
    ]
    # A new session, so the helper processes Chromium forks are stopped with it.
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT_SECONDS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0, stderr[-2000:]
    return stdout, stderr


def test_html_renders_in_chromium(report_path: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "chromium not found on PATH; install Debian's chromium package "
            "(make tools runs deploy/install-chromium.sh)"
        )
    dom, log = run_chromium(chromium, report_path, tmp_path / "profile")
    assert "<th>feature_name</th>" in dom
    assert '<th class="num">p95 ms</th>' in dom
    assert "<svg" in dom
    assert "<script" not in dom
    # Chromium 156 logs each console message, uncaught errors included, as
    # "INFO:CONSOLE"; matching ":CONSOLE" also catches other log levels.
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert "Uncaught" not in log


def test_cost_chart_with_overflowing_cost() -> None:
    svg = render_cost_chart({"overflow": math.inf, "chat": 2.0, "search": 1.0}, None)
    attributes = re.findall(r'\w+="([^"]*)"', svg)
    assert attributes
    for value in attributes:
        assert "nan" not in value.lower(), value
        assert "inf" not in value.lower(), value
    assert 'width="330.0"' in svg
    assert "overflow: -" in svg


def test_html_escapes_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(call_line(feature_name="chat\x1b[31m\x00") + "\n")
    output = tmp_path / "report.html"
    argv = ["report", str(events), "--by", "feature_name", "--html", str(output)]
    assert main(argv) == 0
    capsys.readouterr()
    page = output.read_text(encoding="utf-8")
    assert "chat\\x1b[31m\\x00" in page
    assert "\x1b" not in page
    assert "\x00" not in page
