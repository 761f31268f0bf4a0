"""Exactly one event per call when the FastAPI example gateway is under load.

The gateway runs under uvicorn in a thread of this process, so its events,
spans and metrics are the ``observed`` fixture's; the fake provider runs as a
subprocess on the other core. Events go through a real ``StreamHandler`` to a
file, which the test reads back line by line.

N is 2,000 calls, not 20,000: on 2 cores the gateway, its openai SDK client
and the test's client share one interpreter and serve about 100 to 140 calls
per second with the request mix below, so 20,000 calls would take about
150 s. 2,000 calls take 20 to 35 s, depending on other load on the machine.

Under this load a few successful provider calls also exceed the provider
timeout, so the test compares each failure status of the events with the
HTTP statuses the client received, not with the planned mix.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import llmobs_core
from examples.fastapi_gateway.app import create_app as create_gateway
from llmobs_core.emitters import EVENTS_LOGGER
from tests._servers import run_uvicorn_in_thread
from tests.conftest import Observed
from tests.reliability._provider import fake_provider_process

CALLS = 2_000
CONCURRENCY = 32
PROVIDER_TIMEOUT_SECONDS = 0.5
CLIENT_TIMEOUT_SECONDS = 30.0
SETTLE_TIMEOUT_SECONDS = 20.0
CHAT_PATH = "/api/chat/assistant"


class Kind(enum.Enum):
    """What one request of the mix does."""

    OK = "ok"
    STREAM = "stream"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    DISCONNECT = "disconnect"
    ABANDON = "abandon"


# One cycle of the mix: mostly successes, and every failure kind each cycle.
MIX = (
    [Kind.OK] * 8
    + [Kind.STREAM] * 4
    + [Kind.RATE_LIMIT, Kind.SERVER_ERROR] * 2
    + [Kind.TIMEOUT, Kind.DISCONNECT, Kind.ABANDON, Kind.DISCONNECT]
)
BEHAVIORS = {
    Kind.RATE_LIMIT: "rate_limit",
    Kind.SERVER_ERROR: "server_error",
    Kind.TIMEOUT: "slow",
}
STREAMED = {Kind.STREAM, Kind.DISCONNECT, Kind.ABANDON}


@pytest.fixture
def events_path(observed: Observed, tmp_path: Path) -> Iterator[Path]:
    """Write the JSON lines through ``install_json_handler`` to a file."""
    path = tmp_path / "events.jsonl"
    logger = logging.getLogger(EVENTS_LOGGER)
    propagate = logger.propagate
    with path.open("w", encoding="utf-8") as stream:
        handler = llmobs_core.install_json_handler(stream)
        try:
            yield path
        finally:
            llmobs_core.flush(timeout=10)
            logger.removeHandler(handler)
            handler.close()
            logger.propagate = propagate


@pytest.fixture
def gateway_url(observed: Observed) -> Iterator[str]:
    with fake_provider_process(slow_seconds=1.0) as provider_url:
        app = create_gateway(
            provider_url,
            registry=observed.registry,
            provider_timeout=PROVIDER_TIMEOUT_SECONDS,
        )
        with run_uvicorn_in_thread(app) as url:
            yield url


async def send(client: httpx.AsyncClient, index: int, kind: Kind) -> str:
    """Send one request of ``kind`` and return how it ended on the client."""
    body: dict[str, Any] = {
        "message": f"How do I export report {index}?",
        "stream": kind in STREAMED,
    }
    headers = {"x-tenant-id": f"tenant-{index % 7}"}
    if kind in BEHAVIORS:
        headers["x-fake-behavior"] = BEHAVIORS[kind]
    async with client.stream("POST", CHAT_PATH, json=body, headers=headers) as reply:
        if kind is Kind.ABANDON:
            return "abandoned"
        if kind is Kind.DISCONNECT:
            async for _ in reply.aiter_raw():
                break
            return "disconnected"
        await reply.aread()
        return str(reply.status_code)


async def send_all(url: str, kinds: list[Kind]) -> Counter[str]:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=url, timeout=CLIENT_TIMEOUT_SECONDS, limits=limits
    ) as client:

        async def limited(index: int, kind: Kind) -> str:
            async with semaphore:
                return await send(client, index, kind)

        outcomes = await asyncio.gather(
            *(limited(index, kind) for index, kind in enumerate(kinds))
        )
    return Counter(outcomes)


def requests_total(observed: Observed) -> float:
    return observed.sample("llm_requests_total") or 0.0


def wait_for_calls(observed: Observed, count: int) -> None:
    """Wait until the gateway ended ``count`` calls.

    A call of a request whose client went away may end after the client
    returned, when the server notices the disconnect.
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while requests_total(observed) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_one_event_per_call_under_load(
    observed: Observed, events_path: Path, gateway_url: str
) -> None:
    kinds = [MIX[index % len(MIX)] for index in range(CALLS)]

    outcomes = asyncio.run(send_all(gateway_url, kinds))
    wait_for_calls(observed, CALLS)
    assert llmobs_core.flush(timeout=30)

    assert outcomes["disconnected"] == kinds.count(Kind.DISCONNECT)
    assert outcomes["abandoned"] == kinds.count(Kind.ABANDON)
    lines = events_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == CALLS
    events = [json.loads(line) for line in lines]
    assert all(isinstance(event, dict) for event in events)
    assert len({event["request_id"] for event in events}) == CALLS
    statuses = Counter(event["status"] for event in events)
    assert statuses["rate_limited"] == outcomes["429"]
    # A stream that fails after its first chunk has already sent 200, so its
    # event's failure status has no 502 or 504 to match.
    assert statuses["provider_error"] >= outcomes["502"]
    assert statuses["timeout"] >= outcomes["504"]
    assert requests_total(observed) == CALLS
    assert observed.names().count("call_llm") == CALLS
    assert observed.sample("llmobs_events_dropped_total") in (None, 0.0)
