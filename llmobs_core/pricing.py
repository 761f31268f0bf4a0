"""Price LLM calls offline, and say where each price came from.

Prices come, in this order, from the user's overrides, from a cost the
provider reported in its response, and from the price data bundled with
``genai-prices``. Nothing is fetched at run time: ``genai-prices`` ships a
snapshot and its updater is never started. Every token is priced once:
uncached input, cache read, cache write and output (reasoning included).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices import data_snapshot

from llmobs_core.providers import Usage

__all__ = [
    "BUNDLED_SOURCE",
    "ModelPrices",
    "PriceBook",
    "load_prices",
]

logger = logging.getLogger(__name__)

BUNDLED_SOURCE = f"bundled:{genai_prices.__version__}"
OVERRIDE_SOURCE = "override"
PROVIDER_SOURCE = "provider-reported"
CACHE_HIT_SOURCE = "cache-hit"
UNPRICED_SOURCE = "unpriced"

_PER_TOKEN = 1e-6  # prices are quoted per million tokens


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """Prices of one model in US dollars per million tokens.

    Args:
        input: Uncached input tokens.
        output: Output tokens, reasoning tokens included unless ``reasoning``
            is set.
        cached_input: Input tokens read from the prompt cache; by default
            the input price.
        cache_write: Input tokens written to the prompt cache; by default the
            input price.
        reasoning: Reasoning tokens, if billed apart from other output.

    Raises:
        ValueError: For a negative, infinite or NaN price.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{field.name}={value!r} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"{field.name}={value!r} must be a finite price of 0 or more, "
                    "in US dollars per million tokens"
                )

    def cost(self, usage: Usage) -> float:
        """Return the cost of ``usage`` in US dollars."""
        cached = usage.cached_input_tokens or 0
        written = usage.cache_creation_input_tokens or 0
        uncached = max((usage.input_tokens or 0) - cached - written, 0)
        reasoning = 0
        if self.reasoning is not None:
            reasoning = usage.reasoning_tokens or 0
        output = max((usage.output_tokens or 0) - reasoning, 0)
        total = (
            uncached * self.input
            + cached * _or(self.cached_input, self.input)
            + written * _or(self.cache_write, self.input)
            + output * self.output
            + reasoning * _or(self.reasoning, self.output)
        )
        return total * _PER_TOKEN


class PriceBook:
    """Price lookups for one configuration, cached per model.

    Args:
        overrides: Prices that win over every other source: a mapping of
            model name to ``ModelPrices`` (or a dict of its fields), or the
            path of a JSON file (or YAML, with PyYAML installed) holding
            such a mapping.

    Raises:
        TypeError, ValueError: For an invalid price table.
        FileNotFoundError: If the file does not exist.
    """

    def __init__(
        self, overrides: Mapping[str, Any] | str | PathLike[str] | None = None
    ) -> None:
        self._overrides = _load_overrides(overrides)
        self._bundled: dict[tuple[str | None, str], _BundledPrice | None] = {}
        self._lock = threading.Lock()

    def price(
        self, usage: Usage, *, model: str, provider: str | None
    ) -> tuple[float | None, str]:
        """Return the cost of one call in US dollars, and its source.

        Returns:
            ``(cost, source)``, where source is ``override``,
            ``provider-reported``, ``bundled:<genai-prices version>`` or
            ``unpriced`` (then cost is None). An unknown model is logged
            once at WARNING.
        """
        override = self._overrides.get(model)
        if override is None and usage.model is not None:
            override = self._overrides.get(usage.model)
        has_counts = usage.input_tokens is not None or usage.output_tokens is not None
        if override is not None and has_counts:
            return override.cost(usage), OVERRIDE_SOURCE
        if usage.cost_usd is not None:
            return usage.cost_usd, PROVIDER_SOURCE
        if not has_counts:
            return None, UNPRICED_SOURCE
        bundled = self._find_bundled(usage.model or model, provider)
        if bundled is None:
            return None, UNPRICED_SOURCE

        return bundled.cost(usage), BUNDLED_SOURCE

    def _find_bundled(self, model: str, provider: str | None) -> _BundledPrice | None:
        key = (provider, model)
        try:
            return self._bundled[key]
        except KeyError:
            pass
        found = _BundledPrice.find(model, provider)
        with self._lock:
            self._bundled[key] = found

        return found


class _Rate:
    """One price per million tokens, possibly tiered by total input tokens.

    genai-prices uses the "cliff" model: once a request's input exceeds a
    tier's start, every token of that kind is priced at the tier's rate.
    """

    __slots__ = ("base", "tiers")

    def __init__(self, price: Any) -> None:
        tiers = getattr(price, "tiers", None)
        if tiers is None:
            self.base = float(price)
            self.tiers: tuple[tuple[int, float], ...] = ()
        else:
            self.base = float(price.base)
            ordered = sorted(tiers, key=lambda tier: tier.start, reverse=True)
            self.tiers = tuple((tier.start, float(tier.price)) for tier in ordered)

    def per_token(self, input_tokens: int) -> float:
        for start, price in self.tiers:
            if input_tokens > start:
                return price * _PER_TOKEN
        return self.base * _PER_TOKEN


class _BundledPrice:
    """A genai-prices model price, resolved once for the current date."""

    __slots__ = ("cache_read", "cache_write", "input", "output")

    def __init__(self, model_price: Any) -> None:
        self.input = _Rate(model_price.input_mtok)
        self.output = _Rate(model_price.output_mtok)
        self.cache_read = _optional_rate(model_price.cache_read_mtok, self.input)
        self.cache_write = _optional_rate(model_price.cache_write_mtok, self.input)

    @classmethod
    def find(cls, model: str, provider: str | None) -> _BundledPrice | None:
        snapshot = data_snapshot.get_snapshot()
        try:
            _, model_info = snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            logger.warning(
                "no bundled price for model=%r provider=%r; its calls get "
                "cost_usd=null and cost_source=unpriced; pass prices= to "
                "configure() to price it",
                model,
                provider,
            )
            return None
        model_price = model_info.get_prices(datetime.now(UTC))
        if model_price.input_mtok is None or model_price.output_mtok is None:
            logger.warning("bundled prices of model=%r lack token prices", model)
            return None
        return cls(model_price)

    def cost(self, usage: Usage) -> float:
        total_input = usage.input_tokens or 0
        cached = usage.cached_input_tokens or 0
        written = usage.cache_creation_input_tokens or 0
        uncached = max(total_input - cached - written, 0)
        return (
            uncached * self.input.per_token(total_input)
            + cached * self.cache_read.per_token(total_input)
            + written * self.cache_write.per_token(total_input)
            + (usage.output_tokens or 0) * self.output.per_token(total_input)
        )


def _optional_rate(price: Any, fallback: _Rate) -> _Rate:
    return fallback if price is None else _Rate(price)


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def _load_overrides(
    overrides: Mapping[str, Any] | str | PathLike[str] | None,
) -> dict[str, ModelPrices]:
    if overrides is None:
        return {}
    if isinstance(overrides, str | PathLike):
        overrides = _read_price_file(Path(overrides))
    if not isinstance(overrides, Mapping):
        raise TypeError(
            f"prices must map model names to prices, got {type(overrides).__name__}"
        )
    table: dict[str, ModelPrices] = {}
    for model, prices in overrides.items():
        if isinstance(prices, ModelPrices):
            table[model] = prices
        elif isinstance(prices, Mapping):
            table[model] = _prices_from_mapping(model, prices)
        else:
            raise TypeError(
                f"prices[{model!r}] must be a ModelPrices or a mapping with "
                f"'input' and 'output', got {prices!r}"
            )
    return table


def _prices_from_mapping(model: str, prices: Mapping[str, Any]) -> ModelPrices:
    allowed = {field.name for field in fields(ModelPrices)}
    unknown = sorted(set(prices) - allowed)
    if unknown:
        raise ValueError(
            f"prices[{model!r}] has unknown keys {unknown}; allowed: {sorted(allowed)}"
            " (US dollars per million tokens)"
        )
    missing = sorted({"input", "output"} - set(prices))
    if missing:
        raise ValueError(f"prices[{model!r}] is missing {missing}")
    return ModelPrices(**prices)


def _read_price_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise ImportError(
                f"reading {path} needs PyYAML: pip install pyyaml, or use JSON"
            ) from None
        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"price file {path} is not valid JSON: {error}") from None


def load_prices() -> None:
    """Load the bundled price data now instead of on the first priced call.

    Loading takes a noticeable fraction of a second (about 0.2 s measured on
    a 2-core x86_64 machine), which ``configure`` moves to start-up.
    """
    data_snapshot.get_snapshot()
