"""``python -m examples.demo`` as a subprocess, with a short run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from examples.demo import SECTION_HEADERS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30


def run_demo(output_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "examples.demo",
        "--requests",
        "60",
        "--flask-requests",
        "60",
        "--output-dir",
        str(output_dir),
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=DEMO_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the demo then stops its own server processes.
        process.terminate()
        stdout, stderr = process.communicate(timeout=STOP_TIMEOUT_SECONDS)
        pytest.fail(
            f"demo did not finish within {DEMO_TIMEOUT_SECONDS} s\n"
            f"stdout:\n{stdout}\nstderr:\n{stderr}"
        )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_demo_prints_all_sections(tmp_path: Path) -> None:
    result = run_demo(tmp_path)

    assert result.returncode == 0, result.stderr
    for header in SECTION_HEADERS:
        # Once for the FastAPI gateway, once for the Flask one.
        assert result.stdout.count(f"== {header} ==") == 2
    assert "chat.assistant" in result.stdout
    assert "nutrition.coach" in result.stdout
    assert "Call events per gunicorn worker" in result.stdout
    assert (tmp_path / "events.jsonl").stat().st_size > 0
    assert (tmp_path / "spans.jsonl").stat().st_size > 0
    # One file per worker; which worker accepts a connection is up to the
    # kernel, so a short run may leave one of them empty.
    flask_events = sorted((tmp_path / "flask").glob("events-*.jsonl"))
    assert len(flask_events) == 2
    assert sum(path.stat().st_size for path in flask_events) > 0
