from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from llmobs_core.exposition import (
    check_multiprocess_setup,
    prepare_multiprocess_dir,
    render_metrics,
)

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_render_single_process_registry() -> None:
    registry = CollectorRegistry()
    Counter("demo_things", "Things.", registry=registry).inc(3)

    body, content_type = render_metrics(registry)

    assert b"demo_things_total 3.0" in body
    assert content_type.startswith("text/plain")


def test_render_openmetrics_when_asked() -> None:
    registry = CollectorRegistry()
    Counter("demo_things", "Things.", registry=registry).inc()

    body, content_type = render_metrics(registry, "application/openmetrics-text")

    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_check_missing_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "absent"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(missing))

    with pytest.raises(RuntimeError, match="is not a directory"):
        check_multiprocess_setup()


def test_check_variable_set_after_import(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # prometheus_client was imported by this test process without the variable.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    with pytest.raises(RuntimeError, match="set after prometheus_client"):
        check_multiprocess_setup()


def test_configure_rejects_late_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import llmobs_core

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    with pytest.raises(RuntimeError, match="set after prometheus_client"):
        llmobs_core.configure(registry=CollectorRegistry(), hash_key="k" * 16)


def test_prepare_removes_old_files(tmp_path: Path) -> None:
    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"old")
    keep = tmp_path / "notes.txt"
    keep.write_text("not a sample file")

    prepare_multiprocess_dir(tmp_path)

    assert not stale.exists()
    assert keep.exists()


def test_prepare_without_path_or_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    with pytest.raises(RuntimeError, match="is not set"):
        prepare_multiprocess_dir()


def test_multiprocess_sums_workers(tmp_path: Path) -> None:
    worker = """
        import llmobs_core as llmobs
        llmobs.configure(hash_key="k" * 16)
        for _ in range({count}):
            with llmobs.call_llm(model="gpt-4o-mini") as call:
                call.set_usage(input_tokens=10, output_tokens=2)
    """
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "LLMOBS_HASH_KEY": "k" * 16}
    for count in (3, 4):
        result = run_python(worker.format(count=count), env)
        assert result.returncode == 0, result.stderr

    scrape = run_python(
        """
        from llmobs_core.exposition import render_metrics
        print(render_metrics()[0].decode())
        """,
        env,
    )

    assert scrape.returncode == 0, scrape.stderr
    lines = scrape.stdout.splitlines()
    requests = [line for line in lines if line.startswith("llm_requests_total{")]
    assert requests == [
        'llm_requests_total{feature_name="unknown",model="gpt-4o-mini",'
        'region="unknown",status="ok"} 7.0'
    ]
    in_flight = [line for line in lines if line.startswith("llm_calls_in_flight{")]
    assert in_flight == [
        'llm_calls_in_flight{feature_name="unknown",model="gpt-4o-mini"} 0.0'
    ]
