"""Configuration and failure behaviours of the fake provider."""

from __future__ import annotations

import dataclasses
import enum
import math


class Behavior(enum.StrEnum):
    """Response behaviour that a request selects with a header or its model name."""

    NORMAL = "normal"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"
    BAD_REQUEST = "bad_request"
    SLOW = "slow"
    STREAM_ERROR = "stream_error"


@dataclasses.dataclass(frozen=True)
class FakeProviderConfig:
    """Settings of the fake provider.

    All durations are in seconds. The simulated latency (time to first token and
    time per token) is drawn from the given ranges and then multiplied by
    ``latency_scale``, so ``latency_scale=0`` removes all simulated delays.
    ``slow_seconds`` is not scaled, so that client timeouts can be tested with a
    fast suite.

    Attributes:
        latency_scale: Factor applied to the simulated latency. 0 disables it.
        seed: Seed for the reply text, the latency jitter and the random errors.
        ttft_min_seconds: Minimum time to first token before scaling.
        ttft_max_seconds: Maximum time to first token before scaling.
        token_min_seconds: Minimum time per generated token before scaling.
        token_max_seconds: Maximum time per generated token before scaling.
        slow_seconds: Delay before a ``slow`` request is answered.
        retry_after_seconds: Value of the ``retry-after`` header on 429 responses.
        error_rate_429: Probability that a request without a selected behaviour
            gets a 429 response.
        error_rate_500: Probability that a request without a selected behaviour
            gets a 500 response.
        stream_error_chunks: Number of content chunks that a ``stream_error``
            stream sends before the connection is closed.
        max_recorded_requests: Number of most recent API requests kept for
            ``GET /_fake/requests``.
    """

    latency_scale: float = 1.0
    seed: int = 0
    ttft_min_seconds: float = 0.08
    ttft_max_seconds: float = 0.25
    token_min_seconds: float = 0.005
    token_max_seconds: float = 0.015
    slow_seconds: float = 5.0
    retry_after_seconds: int = 1
    error_rate_429: float = 0.0
    error_rate_500: float = 0.0
    stream_error_chunks: int = 2
    max_recorded_requests: int = 200

    def __post_init__(self) -> None:
        """Raise ValueError if a setting is out of range."""
        _require_range("latency_scale", self.latency_scale, 0.0)
        _require_range("ttft_min_seconds", self.ttft_min_seconds, 0.0)
        _require_range("ttft_max_seconds", self.ttft_max_seconds, self.ttft_min_seconds)
        _require_range("token_min_seconds", self.token_min_seconds, 0.0)
        _require_range(
            "token_max_seconds", self.token_max_seconds, self.token_min_seconds
        )
        _require_range("slow_seconds", self.slow_seconds, 0.0)
        _require_range("retry_after_seconds", self.retry_after_seconds, 0)
        _require_range("error_rate_429", self.error_rate_429, 0.0, 1.0)
        _require_range("error_rate_500", self.error_rate_500, 0.0, 1.0)
        total_rate = self.error_rate_429 + self.error_rate_500
        _require_range("error_rate_429 + error_rate_500", total_rate, 0.0, 1.0)
        _require_range("stream_error_chunks", self.stream_error_chunks, 0)
        _require_range("max_recorded_requests", self.max_recorded_requests, 0)


def _require_range(
    name: str, value: float, minimum: float, maximum: float = math.inf
) -> None:
    if minimum <= value <= maximum:
        return
    expected = f"at least {minimum}"
    if maximum != math.inf:
        expected = f"from {minimum} to {maximum}"
    raise ValueError(f"invalid {name}: {value!r}, expected {expected}")
