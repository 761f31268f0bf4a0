from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

import llmobs_core
from llmobs_core.feedback import EVALUATION_EVENT
from tests.conftest import Observed


def test_feedback_logged_as_event_line(observed: Observed) -> None:
    feedback = llmobs_core.record_feedback(
        request_id="req-1", name="hallucination", value=1.0, label="made-up source"
    )
    lines = [json.loads(line) for line in observed.capture.lines]
    assert lines == [json.loads(feedback.model_dump_json())]
    line = lines[0]
    assert line["event"] == "feedback"
    assert line["request_id"] == "req-1"
    assert line["name"] == "hallucination"
    assert line["value"] == 1.0
    assert line["label"] == "made-up source"
    assert line["trace_id"] is None
    assert line["timestamp"].endswith("Z")


def test_feedback_added_to_current_span(observed: Observed) -> None:
    tracer = observed.provider.get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        feedback = llmobs_core.record_feedback(
            request_id="req-2", name="rating", value=4
        )
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert feedback.trace_id == trace_id
    events = observed.span("request").events
    assert [event.name for event in events] == [EVALUATION_EVENT]
    attributes = dict(events[0].attributes or {})
    assert attributes == {
        "gen_ai.evaluation.name": "rating",
        "gen_ai.evaluation.score.value": 4.0,
    }


def test_feedback_label_on_span(observed: Observed) -> None:
    tracer = observed.provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        llmobs_core.record_feedback(
            request_id="req-3", name="relevance", value=0.0, label="off-topic"
        )
    attributes = dict(observed.span("request").events[0].attributes or {})
    assert attributes["gen_ai.evaluation.score.label"] == "off-topic"


def test_feedback_rejects_empty_name(observed: Observed) -> None:
    with pytest.raises(ValidationError, match="name"):
        llmobs_core.record_feedback(request_id="req-4", name="", value=1)


def test_feedback_label_with_lone_surrogate(observed: Observed) -> None:
    label = json.loads('"good \\ud83d"')
    tracer = observed.provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        llmobs_core.record_feedback(
            request_id="req-3", name="rating", value=1.0, label=label
        )

    [line] = observed.capture.lines
    assert line.isascii()
    assert json.loads(line)["label"] == label
    attributes = dict(observed.span("request").events[0].attributes or {})
    assert attributes["gen_ai.evaluation.score.label"] == "good \ufffd"
