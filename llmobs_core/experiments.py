"""Assign requests to experiment variants, deterministically and stickily.

``assign_variant`` maps SHA-256 of the experiment name and a key (a user,
session or tenant id) to a number in [0, 1) and picks the variant whose
share of the weights covers it. The same experiment, key and weights give
the same variant in every process and on every host, with no shared state.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from opentelemetry import trace

from llmobs_core.context import bind_context

__all__ = ["EXPERIMENT_ATTRIBUTE", "VARIANT_ATTRIBUTE", "assign_variant", "bucket"]

EXPERIMENT_ATTRIBUTE = "llmobs.experiment"
"""Span attribute that contains the experiment name."""
VARIANT_ATTRIBUTE = "llmobs.variant"
"""Span attribute that contains the assigned variant."""

# 2**64: the first 8 bytes of the digest, read as an integer, divided by this
# are uniform in [0, 1).
_SCALE = float(1 << 64)


def bucket(experiment: str, key: str) -> float:
    """Return the key's position in [0, 1) for an experiment.

    The position is SHA-256 of ``experiment``, a NUL byte and ``key`` (UTF-8),
    its first 8 bytes read as a big-endian integer over 2**64. The NUL byte
    keeps ``("ab", "c")`` and ``("a", "bc")`` apart.
    """
    digest = hashlib.sha256(f"{experiment}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_variant(
    experiment: str,
    variants: Mapping[str, float],
    *,
    key: str,
    record: bool = True,
) -> str:
    """Return the variant of ``experiment`` for ``key`` and record it.

    Weights are normalized, so ``{"control": 9, "new-model": 1}`` equals
    ``{"control": 0.9, "new-model": 0.1}``. A key keeps its variant while the
    weights and their order stay the same. Raising one variant's weight
    moves only keys from the variants after it in the mapping.

    Args:
        experiment: Experiment name, a non-empty string.
        variants: Variant name to weight; each weight a finite number above 0.
        key: What assignment sticks to, such as a user or session id.
        record: Whether to add ``experiment`` and ``variant`` to the current
            request's ``extra`` (so every later LLM call event carries them)
            and set ``llmobs.experiment`` and ``llmobs.variant`` on the
            current span, if it records.

    Returns:
        The chosen variant name.

    Raises:
        TypeError: If a name or the key is not a non-empty string.
        ValueError: If ``variants`` is empty or a weight is not above 0.
    """
    weights = _checked_variants(experiment, variants)
    if not isinstance(key, str) or not key:
        raise TypeError(
            f"assign_variant({experiment!r}) needs key as a non-empty str, "
            f"got {key!r}; pass a user, session or tenant id"
        )
    position = bucket(experiment, key) * sum(weights.values())
    chosen = _pick(weights, position)
    if record:
        _record(experiment, chosen)
    return chosen


def _checked_variants(experiment: object, variants: object) -> dict[str, float]:
    if not isinstance(experiment, str) or not experiment:
        raise TypeError(f"experiment must be a non-empty str, got {experiment!r}")
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError(
            f"experiment {experiment!r}: variants must be a non-empty mapping of "
            f"name to weight, such as {{'control': 0.9, 'new': 0.1}}, got {variants!r}"
        )
    weights: dict[str, float] = {}
    for name, weight in variants.items():
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"experiment {experiment!r}: variant names must be non-empty str, "
                f"got {name!r}"
            )
        valid = isinstance(weight, int | float) and not isinstance(weight, bool)
        if not valid or not math.isfinite(weight) or weight <= 0:
            raise ValueError(
                f"experiment {experiment!r}: weight of variant {name!r} must be a "
                f"finite number above 0, got {weight!r}; remove the variant "
                "to stop assigning it"
            )
        weights[name] = float(weight)
    return weights


def _pick(weights: dict[str, float], position: float) -> str:
    cumulative = 0.0
    for name, weight in weights.items():
        cumulative += weight
        if position < cumulative:
            return name
    # Rounding in the running sum can leave the top sliver uncovered.
    return next(reversed(weights))


def _record(experiment: str, variant: str) -> None:
    bind_context(extra={"experiment": experiment, "variant": variant})
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {EXPERIMENT_ATTRIBUTE: experiment, VARIANT_ATTRIBUTE: variant}
        )
