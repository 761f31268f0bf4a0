from __future__ import annotations

import json
import logging
from pathlib import Path

import genai_prices
import pytest

import llmobs_core
from llmobs_core import call_llm
from llmobs_core.pricing import ModelPrices, PriceBook
from llmobs_core.providers import Usage
from tests.conftest import TEST_HASH_KEY, Observed

BUNDLED = f"bundled:{genai_prices.__version__}"


def test_gpt4o_cached_tokens_priced_once() -> None:
    usage = Usage(input_tokens=2000, output_tokens=300, cached_input_tokens=1536)

    cost, source = PriceBook().price(usage, model="gpt-4o", provider="openai")

    # gpt-4o: $2.50 per million input, $1.25 cached input, $10 output.
    expected = (464 * 2.50 + 1536 * 1.25 + 300 * 10.0) / 1e6
    assert cost == pytest.approx(expected)
    assert source == BUNDLED


def test_claude_cache_reads_and_writes_priced_once() -> None:
    usage = Usage(
        input_tokens=2350,
        output_tokens=120,
        cached_input_tokens=2000,
        cache_creation_input_tokens=300,
    )

    cost, source = PriceBook().price(
        usage, model="claude-sonnet-4-5", provider="anthropic"
    )

    # Claude Sonnet 4.5 under 200k tokens: $3 input, $0.30 cache read,
    # $3.75 cache write (5 minutes), $15 output, per million tokens.
    expected = (50 * 3.0 + 2000 * 0.30 + 300 * 3.75 + 120 * 15.0) / 1e6
    assert cost == pytest.approx(expected)
    assert source == BUNDLED


def test_override_wins_over_bundled() -> None:
    book = PriceBook({"gpt-4o": {"input": 1.0, "output": 2.0}})
    usage = Usage(input_tokens=1000, output_tokens=500)

    cost, source = book.price(usage, model="gpt-4o", provider="openai")

    assert cost == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert source == "override"


def test_override_reasoning_price() -> None:
    prices = ModelPrices(input=1.0, output=4.0, cached_input=0.5, reasoning=8.0)
    usage = Usage(
        input_tokens=100, cached_input_tokens=40, output_tokens=50, reasoning_tokens=30
    )

    assert prices.cost(usage) == pytest.approx(
        (60 * 1.0 + 40 * 0.5 + 20 * 4.0 + 30 * 8.0) / 1e6
    )


def test_override_file_json(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"house-model": {"input": 0.1, "output": 0.2}}))

    cost, source = PriceBook(path).price(
        Usage(input_tokens=10, output_tokens=10), model="house-model", provider=None
    )

    assert cost == pytest.approx(3e-6)
    assert source == "override"


@pytest.mark.parametrize(
    ("table", "error", "message"),
    [
        pytest.param({"m": {"input": 1}}, ValueError, "missing", id="missing-output"),
        pytest.param(
            {"m": {"input": 1, "output": 1, "imput": 2}},
            ValueError,
            "unknown keys",
            id="typo",
        ),
        pytest.param(
            {"m": {"input": -1, "output": 1}}, ValueError, "input=-1", id="neg"
        ),
        pytest.param({"m": 3}, TypeError, "must be a ModelPrices", id="number"),
        pytest.param(["m"], TypeError, "must map model names", id="list"),
    ],
)
def test_override_invalid_table(
    table: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        PriceBook(table)  # type: ignore[arg-type]


def test_override_file_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PriceBook(tmp_path / "absent.json")


def test_override_file_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("{not json")

    with pytest.raises(ValueError, match="not valid JSON"):
        PriceBook(path)


def test_provider_reported_cost() -> None:
    usage = Usage(input_tokens=10, output_tokens=10, cost_usd=0.5)

    assert PriceBook().price(usage, model="gpt-4o", provider="openai") == (
        0.5,
        "provider-reported",
    )


def test_unknown_model_unpriced_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook()
    usage = Usage(input_tokens=10, output_tokens=10)

    with caplog.at_level(logging.WARNING, logger="llmobs_core.pricing"):
        first = book.price(usage, model="house-model-9", provider="openai")
        second = book.price(usage, model="house-model-9", provider="openai")

    assert first == (None, "unpriced")
    assert second == (None, "unpriced")
    warnings = [r for r in caplog.records if "house-model-9" in r.getMessage()]
    assert len(warnings) == 1


def test_no_usage_unpriced() -> None:
    assert PriceBook().price(Usage(), model="gpt-4o", provider="openai") == (
        None,
        "unpriced",
    )


def test_event_cost_source_fields(observed: Observed) -> None:
    llmobs_core.configure(
        registry=observed.registry,
        tracer_provider=observed.provider,
        hash_key=TEST_HASH_KEY,
        prices={"house-model": {"input": 1.0, "output": 1.0}},
    )
    with call_llm(model="house-model") as call:
        call.set_usage(input_tokens=100, output_tokens=100)
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.set_usage(input_tokens=100, output_tokens=100)
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        call.mark_cache_hit()
    with call_llm(model="unknown-model-x", provider="openai") as call:
        call.set_usage(input_tokens=1, output_tokens=1)

    assert [(e["cost_source"]) for e in observed.events] == [
        "override",
        BUNDLED,
        "cache-hit",
        "unpriced",
    ]
    assert observed.events[2]["cost_usd"] == 0.0
    assert observed.events[3]["cost_usd"] is None


def test_configure_rejects_bad_prices() -> None:
    with pytest.raises(ValueError, match="missing"):
        llmobs_core.configure(hash_key=TEST_HASH_KEY, prices={"m": {"input": 1.0}})


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        pytest.param("gpt-4o", "openai", id="gpt-4o"),
        pytest.param("claude-sonnet-4-5", "anthropic", id="claude-tiered"),
        pytest.param("gemini-2.5-pro", "google", id="gemini-tiered"),
    ],
)
@pytest.mark.parametrize("input_tokens", [2_000, 200_000, 200_001, 250_000])
def test_bundled_matches_genai_prices(
    model: str, provider: str, input_tokens: int
) -> None:
    from datetime import UTC, datetime

    from genai_prices import Usage as PricedUsage
    from genai_prices import data_snapshot

    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=300,
        cached_input_tokens=1536,
        cache_creation_input_tokens=100,
    )
    _, model_info = data_snapshot.get_snapshot().find_provider_model(
        model, None, provider, None
    )
    reference = model_info.get_prices(datetime.now(UTC)).calc_price(
        PricedUsage(
            input_tokens=input_tokens,
            output_tokens=300,
            cache_read_tokens=1536,
            cache_write_tokens=100,
        )
    )

    cost, _ = PriceBook().price(usage, model=model, provider=provider)

    assert cost == pytest.approx(float(reference["total_price"]), rel=1e-12)
