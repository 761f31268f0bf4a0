"""Server-sent event encoding and paced delivery of reply pieces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from examples.fake_provider._text import LatencyPlan


def encode_event(data: dict[str, Any], event: str | None = None) -> bytes:
    """Encode one server-sent event, with an ``event:`` line if ``event`` is set."""
    payload = json.dumps(data, separators=(",", ":"))
    if event is None:
        return f"data: {payload}\n\n".encode()
    return f"event: {event}\ndata: {payload}\n\n".encode()


async def sleep_seconds(seconds: float) -> None:
    """Sleep for ``seconds`` unless it is zero or negative."""
    if seconds > 0:
        await asyncio.sleep(seconds)


async def paced_pieces(
    pieces: Sequence[str], latency: LatencyPlan, *, break_after: int | None = None
) -> AsyncIterator[str]:
    """Yield the reply pieces, each after its planned delay.

    The first piece comes after the time to first token, each later one after its
    time per token. With ``break_after`` only that many pieces are yielded.
    """
    delays = (latency.first_token_seconds, *latency.token_seconds)
    for index, (piece, delay) in enumerate(zip(pieces, delays, strict=False)):
        if index == break_after:
            return
        await sleep_seconds(delay)
        yield piece
