from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client import generate_latest

import llmobs_core
from llmobs_core import bind_context, call_llm
from llmobs_core.context import RequestState, enter_request, exit_request
from llmobs_core.privacy import (
    CaptureMode,
    DebugTokenVerifier,
    Hasher,
    PrivacyPolicy,
    sign_debug_token,
)
from llmobs_core.schema import LLMCallLog
from tests.conftest import TEST_HASH_KEY, Observed

KEY = b"k" * 32
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a nutrition coach."},
    {"role": "user", "content": "I am jane.doe@example.com, call +44 20 7946 0958."},
]
ANSWER = {
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Write to help@example.org"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 8},
}


def configure(observed: Observed, **policy: Any) -> None:
    llmobs_core.configure(
        tracer_provider=observed.provider,
        registry=observed.registry,
        privacy=PrivacyPolicy(hash_key=TEST_HASH_KEY, **policy),
    )


def test_prompt_hash_stable_across_whitespace() -> None:
    hasher = Hasher(KEY)

    assert hasher.prompt("Hello   world\n") == hasher.prompt("Hello world")
    assert hasher.prompt(" a\tb ") == hasher.prompt("a b")


def test_prompt_hash_ignores_key_order() -> None:
    hasher = Hasher(KEY)
    first = [{"role": "user", "content": "hi  there"}]
    second = [{"content": "hi there", "role": "user"}]

    assert hasher.prompt(first) == hasher.prompt(second)


def test_prompt_hash_changes_with_text_and_key() -> None:
    hasher = Hasher(KEY)

    assert hasher.prompt("Hello") != hasher.prompt("Hello!")
    assert Hasher(b"x" * 32).prompt("Hello") != hasher.prompt("Hello")


def test_template_hash_separate_from_prompt(observed: Observed) -> None:
    template = "Answer as a coach: {question}"
    with call_llm(
        model="m",
        prompt_template_id="coach.v1",
        prompt_template=template,
        prompt="Answer as a coach: eggs?",
    ):
        pass
    with call_llm(
        model="m",
        prompt_template_id="coach.v1",
        prompt_template=template,
        prompt="Answer as a coach: rice?",
    ):
        pass

    first, second = observed.events
    assert first["prompt_template_hash"] == second["prompt_template_hash"]
    assert first["prompt_hash"] != second["prompt_hash"]
    assert first["prompt_template_hash"] == Hasher(TEST_HASH_KEY.encode()).template(
        "coach.v1", template
    )


def test_default_policy_captures_nothing(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini", prompt=MESSAGES) as call:
        call.record(ANSWER)

    event = observed.events[0]
    assert event["capture_mode"] == "none"
    assert event["input_snippet"] is None
    assert event["output_snippet"] is None
    assert event["input_content"] is None
    assert event["output_content"] is None
    assert "example.com" not in observed.capture.lines[0]


def test_snippet_mode_redacts_and_cuts(observed: Observed) -> None:
    configure(observed, capture=CaptureMode.SNIPPET, sample_rate=1.0, snippet_chars=20)
    with call_llm(model="gpt-4o-mini", prompt=MESSAGES) as call:
        call.record(ANSWER)

    event = observed.events[0]
    assert event["capture_mode"] == "snippet"
    assert event["input_snippet"] == "I am [EMAIL], call ["
    assert event["output_snippet"] == "Write to [EMAIL]"
    assert event["input_content"] is None
    assert "jane.doe" not in observed.capture.lines[0]


def test_snippet_mode_stream_output(observed: Observed) -> None:
    configure(observed, capture="snippet", sample_rate=1.0)
    chunks = [
        {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": part}}],
        }
        for part in ("Mail ", "bob@", "example.com ", "now")
    ]
    with call_llm(model="gpt-4o-mini", prompt="hi") as call:
        for chunk in chunks:
            call.record_chunk(chunk)

    assert observed.events[0]["output_snippet"] == "Mail [EMAIL] now"


def test_sampling_decided_by_trace_id(observed: Observed) -> None:
    configure(observed, capture="snippet", sample_rate=0.5)
    tracer = observed.provider.get_tracer("test")
    for _ in range(40):
        with tracer.start_as_current_span("request"):
            for _ in range(3):
                with call_llm(model="m", prompt="hello"):
                    pass

    by_trace: dict[str, set[str]] = {}
    for event in observed.events:
        by_trace.setdefault(event["trace_id"], set()).add(event["capture_mode"])
    assert all(len(modes) == 1 for modes in by_trace.values())
    sampled = [modes for modes in by_trace.values() if modes == {"snippet"}]
    assert 5 <= len(sampled) <= 35


def test_sample_rate_zero_captures_nothing(observed: Observed) -> None:
    configure(observed, capture="snippet", sample_rate=0.0)
    with call_llm(model="m", prompt="hello"):
        pass

    assert observed.events[0]["capture_mode"] == "none"


def test_debug_tenant_full_content(observed: Observed) -> None:
    configure(observed, debug_tenants=["acme-debug"])
    tokens = enter_request(
        RequestState(request_id="r", tenant_id="acme-debug", debug=True)
    )
    try:
        with call_llm(model="gpt-4o-mini", prompt=MESSAGES) as call:
            call.record(ANSWER)
    finally:
        exit_request(tokens)

    event = observed.events[0]
    assert event["capture_mode"] == "full"
    assert event["input_content"] == (
        "system: You are a nutrition coach.\n"
        "user: I am jane.doe@example.com, call +44 20 7946 0958."
    )
    assert event["output_content"] == "Write to help@example.org"


def test_bind_context_cannot_turn_on_debug() -> None:
    with pytest.raises(TypeError, match="unknown attribute"):
        bind_context(debug="true")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        pytest.param({"capture": "full"}, "not allowed", id="full-for-all"),
        pytest.param({"sample_rate": 1.5}, "sample_rate", id="rate-high"),
        pytest.param({"sample_rate": float("nan")}, "sample_rate", id="rate-nan"),
        pytest.param({"snippet_chars": 0}, "snippet_chars", id="snippet-zero"),
        pytest.param({"environment": "staging"}, "production", id="environment"),
    ],
)
def test_policy_rejects_bad_values(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrivacyPolicy(**policy)


def test_policy_rejects_string_allow_list() -> None:
    with pytest.raises(TypeError, match="wrap it in a list"):
        PrivacyPolicy(debug_tenants="acme")  # type: ignore[arg-type]


def test_production_requires_hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMOBS_HASH_KEY", raising=False)

    with pytest.raises(ValueError, match="production"):
        llmobs_core.configure(privacy=PrivacyPolicy(environment="production"))


def test_development_without_key_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("LLMOBS_HASH_KEY", raising=False)

    with caplog.at_level(logging.WARNING):
        llmobs_core.configure(privacy=PrivacyPolicy(environment="development"))

    assert "random per-process key" in caplog.text


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        pytest.param("true", CaptureMode.SNIPPET, id="true"),
        pytest.param("SPAN_AND_EVENT", CaptureMode.SNIPPET, id="span-and-event"),
        pytest.param("false", CaptureMode.NONE, id="false"),
        pytest.param("NO_CONTENT", CaptureMode.NONE, id="no-content"),
    ],
)
def test_otel_capture_variable_honoured(
    monkeypatch: pytest.MonkeyPatch, value: str, mode: CaptureMode
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)

    assert PrivacyPolicy().capture is mode
    assert PrivacyPolicy(capture="none").capture is CaptureMode.NONE
    expected_rate = 1.0 if mode is CaptureMode.SNIPPET else 0.0
    assert PrivacyPolicy().sample_rate == expected_rate
    assert PrivacyPolicy(sample_rate=0.1).sample_rate == 0.1


def test_debug_token_accepted_once() -> None:
    verifier = DebugTokenVerifier(KEY, max_age=3600)
    token = sign_debug_token(KEY, ttl_seconds=60, now=1_000)

    assert verifier.check(token, now=1_001) is None
    assert verifier.check(token, now=1_002) == "replayed"


@pytest.mark.parametrize(
    ("token", "now", "reason"),
    [
        pytest.param("garbage", 1_000, "malformed", id="malformed"),
        pytest.param("v1.abc.n.s", 1_000, "malformed", id="bad-expiry"),
        pytest.param("x" * 5000, 1_000, "malformed", id="huge"),
        pytest.param(
            sign_debug_token(b"z" * 32, ttl_seconds=60, now=1_000),
            1_001,
            "bad_signature",
            id="forged",
        ),
        pytest.param(
            sign_debug_token(KEY, ttl_seconds=60, now=1_000),
            2_000,
            "expired",
            id="expired",
        ),
        pytest.param(
            sign_debug_token(KEY, ttl_seconds=86_400, now=1_000),
            1_001,
            "too_long_lived",
            id="long-lived",
        ),
    ],
)
def test_debug_token_rejected(token: str, now: float, reason: str) -> None:
    assert DebugTokenVerifier(KEY, max_age=3600).check(token, now=now) == reason


def test_debug_token_tampered_expiry() -> None:
    token = sign_debug_token(KEY, ttl_seconds=60, now=1_000)
    version, expiry, nonce, signature = token.split(".")
    tampered = ".".join([version, str(int(expiry) + 30), nonce, signature])

    assert DebugTokenVerifier(KEY, max_age=3600).check(tampered, now=1_001) == (
        "bad_signature"
    )


# json.loads gives lone surrogates for \ud800 escapes, so such strings reach
# llmobs from providers' responses and from applications' JSON requests.
LONE_SURROGATE = json.loads('"private text \\ud800"')


def test_prompt_with_lone_surrogate_hashed() -> None:
    hasher = Hasher(KEY)
    digest = hasher.prompt(LONE_SURROGATE)

    assert len(digest) == 64
    assert digest != hasher.prompt("private text")
    assert hasher.prompt([{"role": "user", "content": LONE_SURROGATE}])
    assert hasher.template("t1", LONE_SURROGATE)
    assert hasher(LONE_SURROGATE)


def test_lone_surrogates_keep_event_line(observed: Observed) -> None:
    configure(observed, capture=CaptureMode.SNIPPET, sample_rate=1.0)
    with (
        bind_context(tenant_tier=LONE_SURROGATE),
        call_llm(
            model="gpt-4o-mini",
            prompt=LONE_SURROGATE,
            prompt_template=LONE_SURROGATE,
            **{LONE_SURROGATE: LONE_SURROGATE},
        ) as call,
    ):
        call.record({**ANSWER, "model": LONE_SURROGATE})

    [line] = observed.capture.lines
    event = json.loads(line)
    assert line.isascii()
    assert event["input_snippet"] == LONE_SURROGATE
    assert event["response_model"] == LONE_SURROGATE
    assert event["extra"] == {LONE_SURROGATE: LONE_SURROGATE}
    assert event["prompt_hash"] is not None
    assert event["prompt_template_hash"] is not None
    exposition = generate_latest(observed.registry).decode()
    assert 'tenant_tier="private text \ufffd"' in exposition


def test_escaped_line_equals_usual_line(observed: Observed) -> None:
    from llmobs_core.emitters.jsonlog import _escaped_json

    configure(observed)
    with call_llm(model="gpt-4o-mini", prompt="héllo") as call:
        call.record(ANSWER)

    [line] = observed.capture.lines
    event = LLMCallLog.model_validate_json(line)
    assert json.loads(_escaped_json(event)) == json.loads(line)
    assert list(json.loads(_escaped_json(event))) == list(json.loads(line))


class QuotingMessage(dict[str, str]):
    """A message whose items() fails with an error that quotes its text."""

    def items(self) -> Any:
        raise ValueError(f"invalid message: {self['content']}")


@pytest.mark.parametrize("field", ["prompt", "prompt_template"])
def test_hash_failure_warning_quotes_nothing(
    observed: Observed, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    configure(observed)
    secret = "my SSN is 123-45-6789"
    value: Any = [QuotingMessage(role="user", content=secret)]
    if field == "prompt_template":
        value = secret.encode()

    with call_llm(model="gpt-4o-mini", **{field: value}):
        pass

    [event] = observed.events
    assert event[f"{field}_hash"] is None
    assert f"{field}_hash left empty" in caplog.text
    assert "123-45" not in caplog.text
