"""Bad configuration, bad arguments and concurrent use of one request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core import bind_context, call_llm, feature, observe_llm_call
from llmobs_core import config as config_module
from llmobs_core.context import RequestState, enter_request, exit_request
from llmobs_core.emitters import JsonLogEmitter, PrometheusEmitter
from tests.conftest import TEST_HASH_KEY, Observed


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "_config", None)


def test_lazy_default_config_never_raises(
    unconfigured: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("LLMOBS_HASH_KEY", "short")

    first = config_module.get_config()
    second = config_module.get_config()

    assert first is second
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "default configuration failed" in errors[0].getMessage()


def test_middleware_build_raises_bad_env(
    unconfigured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmobs_core.server import ServerSettings

    monkeypatch.setenv("LLMOBS_HASH_KEY", "short")

    with pytest.raises(ValueError, match="at least 16 bytes"):
        ServerSettings()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"emitters": JsonLogEmitter()}, "list of emitters", id="emitter"),
        pytest.param({"registry": "nope"}, "CollectorRegistry", id="registry"),
        pytest.param({"tracer_provider": "nope"}, "TracerProvider", id="provider"),
        pytest.param({"hash_key": 123}, "str or bytes", id="hash-key"),
    ],
)
def test_configure_argument_types(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        llmobs_core.configure(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"provider": 123}, id="provider"),
        pytest.param({"prompt_template_id": 7}, id="template-id"),
    ],
)
def test_call_llm_rejects_bad_types(arguments: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="str or None"):
        call_llm(model="m", **arguments)  # type: ignore[arg-type]


def test_observe_llm_call_rejects_bad_feature() -> None:
    with pytest.raises(TypeError, match="feature_name=42"):
        observe_llm_call(42, "m")  # type: ignore[arg-type]


def test_bind_context_blocks_isolated_per_task(observed: Observed) -> None:
    async def one(tenant: str, delay: float) -> None:
        with bind_context(tenant_id=tenant):
            await asyncio.sleep(delay)
            with call_llm(model=f"model-{tenant}"):
                pass

    async def main() -> None:
        tokens = enter_request(RequestState(request_id="r1", tenant_id="base"))
        try:
            await asyncio.gather(one("A", 0.01), one("B", 0.03))
            with call_llm(model="after"):
                pass
            context = llmobs_core.current_context()
            assert context is not None
            assert context.tenant_id == "base"
        finally:
            exit_request(tokens)

    asyncio.run(main())

    tenants = {event["model"]: event["tenant_id"] for event in observed.events}
    assert tenants == {"model-A": "A", "model-B": "B", "after": "base"}


def test_bind_context_user_id_hashed(observed: Observed) -> None:
    import hashlib
    import hmac

    with bind_context(user_id="alice@example.com"), call_llm(model="m"):
        pass

    expected = hmac.new(
        TEST_HASH_KEY.encode(), b"alice@example.com", hashlib.sha256
    ).hexdigest()
    assert observed.events[0]["user_id_hash"] == expected
    assert "alice" not in observed.capture.lines[0]


def test_scopes_closed_from_other_task(observed: Observed) -> None:
    async def stream() -> AsyncIterator[int]:
        with feature("streamed"), bind_context(region="eu"):
            yield 1
            yield 2

    async def main() -> None:
        chunks = stream()
        await asyncio.create_task(anext(chunks))
        await chunks.aclose()

    asyncio.run(main())


def test_tenant_tier_label_bounded(observed: Observed) -> None:
    registry = CollectorRegistry()
    emitter = PrometheusEmitter(registry, label_limits={"tenant_tier": 3})
    llmobs_core.configure(emitters=[emitter], hash_key=TEST_HASH_KEY)
    for index in range(10):
        with (
            bind_context(tenant_tier=f"tier-{index}"),
            call_llm(model="gpt-4o-mini", provider="openai") as call,
        ):
            call.set_usage(input_tokens=10, output_tokens=10)

    samples = [
        sample
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "llm_cost_usd_total"
    ]
    tiers = sorted(sample.labels["tenant_tier"] for sample in samples)
    assert tiers == ["other", "tier-0", "tier-1", "tier-2"]
    folded = registry.get_sample_value(
        "llmobs_label_values_folded_total", {"label": "tenant_tier"}
    )
    assert folded == 7


def test_label_values_sanitized(observed: Observed) -> None:
    long_feature = "f" * 300
    with feature(long_feature), call_llm(model="bad\nmodel"):
        pass

    value = observed.sample(
        "llm_requests_total", feature_name="f" * 64, model="badmodel", status="ok"
    )
    assert value == 1


@pytest.mark.parametrize(
    "control",
    [
        pytest.param("\x00", id="c0-nul"),
        pytest.param("\x1b", id="c0-escape"),
        pytest.param("\x7f", id="delete"),
        pytest.param("\x80", id="c1-first"),
        pytest.param("\x85", id="c1-next-line"),
        pytest.param("\x9b", id="c1-csi"),
        pytest.param("\x9f", id="c1-last"),
    ],
)
def test_control_characters_stripped_from_region(
    observed: Observed, control: str
) -> None:
    with bind_context(region=f"eu{control}-west"), call_llm(model="m"):
        pass

    value = observed.sample(
        "llm_requests_total", feature_name="unknown", model="m", region="eu-west"
    )
    assert value == 1


def test_label_keeps_latin1_letters(observed: Observed) -> None:
    with bind_context(region="zürich\xa0a"), call_llm(model="m"):
        pass

    value = observed.sample(
        "llm_requests_total", feature_name="unknown", model="m", region="zürich\xa0a"
    )
    assert value == 1


def test_provider_content_filter_is_guardrail(observed: Observed) -> None:
    response = {
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"content": ""}, "finish_reason": "content_filter"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 0},
    }
    with call_llm(model="gpt-4o-mini") as call:
        call.record(response)

    assert observed.events[0]["status"] == "filtered_by_guardrail"


def test_record_chat_dict_without_object(observed: Observed) -> None:
    response = {
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
    }
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.record(response)

    (event,) = observed.events
    assert event["input_tokens"] == 100
    assert event["output_tokens"] == 20
    assert event["finish_reason"] == "stop"
    assert event["cost_usd"] is not None
    assert event["cost_source"].startswith("bundled:")
