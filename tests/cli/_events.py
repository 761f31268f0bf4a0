"""Build call and feedback event lines for the command-line tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from llmobs_core.schema import LLMCallLog

START = datetime(2026, 3, 1, tzinfo=UTC)


def call_line(**changes: Any) -> str:
    """Return one call event line, valid under the current schema."""
    event: dict[str, Any] = dict.fromkeys(LLMCallLog.model_fields)
    event.update(
        timestamp=START,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        model="gpt-4o-mini",
        latency_ms=100.0,
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
    return LLMCallLog.model_validate(event).model_dump_json()


def feedback_line(request_id: str, name: str, value: float) -> str:
    """Return one feedback event line."""
    return json.dumps(
        {
            "event": "feedback",
            "timestamp": START.isoformat(),
            "request_id": request_id,
            "trace_id": None,
            "name": name,
            "value": value,
            "label": None,
        }
    )


def at(seconds: float) -> datetime:
    """Return the instant ``seconds`` after ``START``."""
    return START + timedelta(seconds=seconds)
