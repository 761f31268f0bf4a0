"""The per-call shortcuts give the same results as the general code they skip."""

from __future__ import annotations

import enum
import json
import logging
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core import bind_context, call_llm, feature
from llmobs_core.context import RequestState, enter_request, exit_request
from llmobs_core.emitters import JsonLogEmitter, PrometheusEmitter, StageEvent
from llmobs_core.emitters._writer import BackgroundWriter
from llmobs_core.privacy import PrivacyPolicy
from llmobs_core.privacy._hashing import (
    _CANONICAL_JSON,
    _flat_messages_json,
    _normalize_strings,
    canonical_prompt_and_length,
)
from llmobs_core.providers import extract_usage
from llmobs_core.schema import LLMCallLog
from tests.conftest import TEST_HASH_KEY, Observed

OPENAI_CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Eggs and oats."},
        }
    ],
    "usage": {
        "prompt_tokens": 412,
        "completion_tokens": 128,
        "total_tokens": 540,
        "prompt_tokens_details": {"cached_tokens": 256},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
MESSAGES = [
    {"role": "system", "content": "You are  a coach.\n Answer briefly."},
    {"role": "user", "content": "How much protein?"},
]


class ListEmitter:
    name = "list"

    def __init__(self) -> None:
        self.events: list[LLMCallLog] = []

    def emit_call(self, event: LLMCallLog, span: Span) -> None:
        self.events.append(event)

    def emit_stage(self, event: StageEvent) -> None:
        pass


@pytest.fixture
def emitted() -> ListEmitter:
    assert llmobs_core.flush(timeout=10)
    emitter = ListEmitter()
    llmobs_core.configure(emitters=[emitter], hash_key=TEST_HASH_KEY)
    return emitter


def one_call_of_each_kind() -> None:
    from openai.types.chat import ChatCompletion

    tokens = enter_request(
        RequestState(request_id="r1", tenant_id="acme", tenant_tier="pro")
    )
    try:
        with (
            feature("chat"),
            call_llm(
                model="gpt-4o-mini", provider="openai", prompt=MESSAGES, team="a"
            ) as call,
        ):
            call.record(ChatCompletion.model_validate(OPENAI_CHAT))
        with bind_context(region="eu", extra={"k": "v"}), call_llm(model="m") as call:
            call.mark_cache_hit()
            call.add_retry("busy")
        with call_llm(model="m", prompt="hi there", streaming=True) as call:
            call.record_chunk({"object": "chat.completion.chunk", "choices": []})
        with pytest.raises(TimeoutError), call_llm(model="gpt-4o"):
            raise TimeoutError
    finally:
        exit_request(tokens)


def test_event_equals_validated_event(emitted: ListEmitter) -> None:
    one_call_of_each_kind()

    assert len(emitted.events) == 4
    for event in emitted.events:
        validated = LLMCallLog.model_validate(event.model_dump())
        assert validated == event
        assert validated.model_dump_json() == event.model_dump_json()
        assert list(event.__dict__) == list(LLMCallLog.model_fields)


def test_event_fields_set_as_validation(emitted: ListEmitter) -> None:
    with call_llm(model="m"):
        pass

    (event,) = emitted.events
    # What LLMCallLog(**fields) records when given every field but the
    # defaulted schema_version.
    assert event.model_fields_set == set(LLMCallLog.model_fields) - {"schema_version"}


def test_event_json_line_unchanged(observed: Observed) -> None:
    one_call_of_each_kind()

    for line in observed.capture.lines:
        event = LLMCallLog.model_validate_json(line)
        assert event.model_dump_json() == line


def test_invalid_request_attribute_still_rejected(
    emitted: ListEmitter, caplog: pytest.LogCaptureFixture
) -> None:
    state = RequestState(request_id="r1", tenant_id=123)  # type: ignore[arg-type]
    tokens = enter_request(state)
    try:
        with caplog.at_level(logging.WARNING), call_llm(model="m"):
            pass
    finally:
        exit_request(tokens)

    assert emitted.events == []
    assert "building the LLM call event failed" in caplog.text


def test_snippet_capture_event_validates(emitted: ListEmitter) -> None:
    llmobs_core.configure(
        emitters=[emitted],
        privacy=PrivacyPolicy(
            capture="snippet", sample_rate=1.0, hash_key=TEST_HASH_KEY
        ),
    )
    with call_llm(model="m", prompt=MESSAGES) as call:
        call.record(OPENAI_CHAT)

    (event,) = emitted.events
    assert event.capture_mode == "snippet"
    assert event.output_snippet == "Eggs and oats."
    assert LLMCallLog.model_validate(event.model_dump()) == event


text = st.text(alphabet=st.characters(max_codepoint=0x2FFF), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(text, text, max_size=4), max_size=4))
def test_flat_messages_json_matches_encoder(prompt: list[dict[str, str]]) -> None:
    lengths: list[int] = []
    expected = _CANONICAL_JSON.encode(_normalize_strings(prompt, lengths))

    found = _flat_messages_json(prompt)

    assert found is not None
    assert found[0] == expected
    assert found[1] == sum(lengths)


@pytest.mark.parametrize(
    ("prompt", "length"),
    [
        pytest.param("  a b ", 6, id="text"),
        pytest.param([{"role": "user", "content": "abc"}], 7, id="messages"),
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            10,
            id="content-parts",
        ),
        pytest.param({"messages": [{"content": "ab"}], "n": 2}, 2, id="mapping"),
        pytest.param([{"role": "user", "name": None}], 4, id="none-value"),
    ],
)
def test_prompt_length_counts_strings(prompt: Any, length: int) -> None:
    canonical, found = canonical_prompt_and_length(prompt)

    assert found == length
    if not isinstance(prompt, str):
        assert (
            canonical
            == json.dumps(
                _normalize_strings(prompt, []),
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        )


def test_sdk_extra_field_read() -> None:
    from openai.types.chat import ChatCompletion

    response = ChatCompletion.model_validate(
        {**OPENAI_CHAT, "usage": {**OPENAI_CHAT["usage"], "cost": 0.0012}}
    )

    usage = extract_usage(response)

    assert usage is not None
    assert usage.cost_usd == 0.0012
    assert usage.cached_input_tokens == 256
    assert usage.cache_creation_input_tokens is None


def test_int_subclass_counts_made_plain(emitted: ListEmitter) -> None:
    class Tokens(enum.IntEnum):
        FEW = 3

    with call_llm(model="m") as call:
        call.set_usage(input_tokens=Tokens.FEW)
        usage = {"completion_tokens": Tokens.FEW}
        call.record({"object": "chat.completion", "usage": usage})

    (event,) = emitted.events
    assert type(event.input_tokens) is int
    assert type(event.output_tokens) is int


def test_folded_labels_counted_per_call() -> None:
    registry = CollectorRegistry()
    prometheus = PrometheusEmitter(registry, label_limits={"feature_name": 1})
    llmobs_core.configure(emitters=[prometheus], hash_key=TEST_HASH_KEY)
    for name in ("first", "second", "second"):
        with feature(name), call_llm(model="m"):
            pass

    folded = registry.get_sample_value(
        "llmobs_label_values_folded_total", {"label": "feature_name"}
    )
    # Call start and stage duration count a fold on every call; the call's
    # own metrics once per distinct label set.
    assert folded == 5


def test_writer_flush_times_out_while_blocked() -> None:
    release = threading.Event()
    written: list[int] = []

    def write(item: int) -> None:
        release.wait(timeout=10)
        written.append(item)

    writer: BackgroundWriter[int] = BackgroundWriter("test", write, max_items=10)
    writer.submit(1)
    writer.submit(2)
    try:
        blocked = writer.flush(timeout=0.05)
    finally:
        release.set()

    assert not blocked
    assert writer.flush(timeout=10)
    assert written == [1, 2]


def test_writer_flush_idle_returns_at_once() -> None:
    writer: BackgroundWriter[int] = BackgroundWriter(
        "test", lambda item: None, max_items=2
    )

    assert writer.flush(timeout=0)
    writer.submit(1)
    assert writer.flush(timeout=10)
    assert writer.flush(timeout=0)


def test_json_emitter_drops_counted() -> None:
    registry = CollectorRegistry()
    prometheus = PrometheusEmitter(registry)
    dropped = prometheus.metrics.events_dropped.labels("jsonlog")
    logger = logging.getLogger("test.call_path.events")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    release = threading.Event()
    lines: list[str] = []

    class Blocking(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            release.wait(timeout=10)
            lines.append(record.getMessage())

    handler = Blocking()
    logger.addHandler(handler)
    emitter = JsonLogEmitter(logger, queue_size=2, on_drop=dropped.inc)
    llmobs_core.configure(emitters=[emitter, prometheus], hash_key=TEST_HASH_KEY)
    try:
        for _ in range(6):
            with call_llm(model="m"):
                pass
    finally:
        release.set()
    assert emitter.flush(timeout=10)
    logger.removeHandler(handler)

    drops = registry.get_sample_value(
        "llmobs_events_dropped_total", {"emitter": "jsonlog"}
    )
    assert drops is not None
    assert len(lines) + drops == 6
    assert 2 <= len(lines) <= 3
