from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import llmobs_asgi
import llmobs_core
import llmobs_flask
from llmobs_core.schema import CallStatus, LLMCallLog, json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "llm_call_log.schema.json"


def minimal_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = dict.fromkeys(LLMCallLog.model_fields)
    event.update(
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        model="gpt-4o-mini",
        latency_ms=12.5,
        streaming=False,
        usage_estimated=False,
        retries=0,
        cache_hit=False,
        status="ok",
        cost_source="unpriced",
        capture_mode="none",
        extra={},
    )
    del event["schema_version"]
    event.update(changes)
    return event


def test_schema_file_in_sync() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == json.loads(json.dumps(json_schema(), sort_keys=True))


def test_schema_every_field_described() -> None:
    for name, info in LLMCallLog.model_fields.items():
        assert info.description, f"field {name} has no description"


def test_schema_status_values() -> None:
    assert {status.value for status in CallStatus} == {
        "ok",
        "timeout",
        "rate_limited",
        "provider_error",
        "filtered_by_guardrail",
        "cancelled",
        "error",
        "budget_exceeded",
    }


def test_timestamp_serialized_rfc3339_utc() -> None:
    event = LLMCallLog.model_validate(minimal_event())
    assert json.loads(event.model_dump_json())["timestamp"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param(datetime(2026, 1, 2), id="naive"),
        pytest.param(
            datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=2))), id="offset"
        ),
    ],
)
def test_timestamp_rejects_non_utc(timestamp: datetime) -> None:
    with pytest.raises(ValidationError, match="UTC"):
        LLMCallLog.model_validate(minimal_event(timestamp=timestamp))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"trace_id": "0" * 31}, id="short-trace-id"),
        pytest.param({"span_id": "B7AD6B7169203331"}, id="upper-span-id"),
        pytest.param({"input_tokens": -1}, id="negative-tokens"),
        pytest.param({"status": "weird"}, id="unknown-status"),
        pytest.param({"surprise": 1}, id="unknown-field"),
    ],
)
def test_schema_rejects_invalid(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LLMCallLog.model_validate(minimal_event(**changes))


def test_public_api_pinned() -> None:
    assert llmobs_core.__all__ == [
        "SCHEMA_VERSION",
        "Budget",
        "BudgetBook",
        "BudgetDecision",
        "BudgetEmitter",
        "BudgetOutcome",
        "CallStatus",
        "Config",
        "Emitter",
        "FeedbackLog",
        "HeaderNames",
        "InMemoryBudgetStore",
        "JsonLogEmitter",
        "LLMCall",
        "LLMCallLog",
        "LLMCallScope",
        "OTelSpanEmitter",
        "PrometheusEmitter",
        "RedisBudgetStore",
        "RequestContext",
        "StageScope",
        "assign_variant",
        "bind_context",
        "budget_decision",
        "build_prompt",
        "call_llm",
        "configure",
        "current_call",
        "current_context",
        "feature",
        "flush",
        "httpx_event_hooks",
        "inject_headers",
        "install_json_handler",
        "instrument_requests",
        "isolate_generator",
        "observe_llm_call",
        "outgoing_headers",
        "postprocess",
        "record_feedback",
        "retrieve_context",
        "shutdown",
    ]
    assert llmobs_asgi.__all__ == ["LLMObsMiddleware", "metrics_endpoint"]
    assert llmobs_flask.__all__ == ["LLMObs", "LLMObsWSGIMiddleware", "metrics_view"]


def test_core_imports_no_web_framework() -> None:
    code = (
        "import sys, llmobs_core, llmobs_core.server; "
        "found = {'starlette', 'flask', 'asgiref', 'fastapi'} & set(sys.modules); "
        "print(sorted(found))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_core_imports_no_otel_sdk() -> None:
    code = "import sys, llmobs_core; print('opentelemetry.sdk' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False"
