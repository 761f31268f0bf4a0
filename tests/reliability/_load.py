"""Request mix, load driver and result readers shared by the load tests.

The driver is an ``httpx.AsyncClient`` with a bounded number of requests in
flight. Each request of the mix ends in one of the ways a gateway meets in
production: a success, a provider error, a provider timeout, a client that
disconnects after the first streamed chunk, or a client that abandons a
stream before reading any of it.
"""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

CHAT_PATH = "/api/chat/assistant"
BEHAVIOR_HEADER = "x-fake-behavior"
CLIENT_TIMEOUT_SECONDS = 30.0
SCRAPE_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.1


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
# The outcomes ``send`` returns for requests that reached the gateway.
CLIENT_OUTCOMES = frozenset({"200", "429", "502", "504", "disconnected", "abandoned"})


def plan(calls: int) -> list[Kind]:
    """Return the kinds of ``calls`` requests, cycling through ``MIX``."""
    return [MIX[index % len(MIX)] for index in range(calls)]


async def send(client: httpx.AsyncClient, index: int, kind: Kind) -> str:
    """Send one request of ``kind`` and return how it ended on the client.

    Returns:
        ``"abandoned"`` or ``"disconnected"`` for the requests that leave
        early, else the HTTP status code as a string.

    Raises:
        httpx.HTTPError: The request failed on the client's side.
    """
    body: dict[str, Any] = {
        "message": f"How do I export report {index}?",
        "stream": kind in STREAMED,
    }
    headers = {"x-tenant-id": f"tenant-{index % 7}"}
    if kind in BEHAVIORS:
        headers[BEHAVIOR_HEADER] = BEHAVIORS[kind]
    async with client.stream("POST", CHAT_PATH, json=body, headers=headers) as reply:
        if kind is Kind.ABANDON:
            return "abandoned"
        if kind is Kind.DISCONNECT:
            async for _ in reply.aiter_raw():
                break
            return "disconnected"
        await reply.aread()
        return str(reply.status_code)


async def send_all(url: str, kinds: list[Kind], concurrency: int) -> Counter[str]:
    """Send one request per entry of ``kinds``, ``concurrency`` at a time.

    Every request opens a new connection. With kept-alive connections, runs
    failed with ``httpx.ReadError`` before reaching the gateway.
    NOTE: the likely cause, not confirmed, is the server closing an idle
    connection at its keep-alive timeout (by default 2 s in gunicorn 27 and
    5 s in uvicorn 0.55) just as the client reuses it.

    Returns:
        The number of requests per outcome of ``send``, or per error type
        and message for a request that raised ``httpx.HTTPError``.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=url, timeout=CLIENT_TIMEOUT_SECONDS, limits=limits
    ) as client:

        async def limited(index: int, kind: Kind) -> str:
            async with semaphore:
                try:
                    return await send(client, index, kind)
                except httpx.HTTPError as error:
                    # Counted, so that one failed request neither hides the
                    # others' outcomes nor leaves their connections open.
                    return f"{type(error).__name__}: {error}"

        outcomes = await asyncio.gather(
            *(limited(index, kind) for index, kind in enumerate(kinds))
        )
    return Counter(outcomes)


def read_json_lines(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Parse every line of the files as one JSON object.

    Raises:
        AssertionError: If a file does not end with a newline, or a line is
            not exactly one JSON object, as a torn or interleaved write
            would leave it. The message names the file and line.
    """
    records: list[dict[str, Any]] = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert not text or text.endswith("\n"), f"{path}: last line is incomplete"
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise AssertionError(f"{path}:{number}: {error}: {line!r}") from None
            assert isinstance(record, dict), f"{path}:{number}: {line!r}"
            records.append(record)
    return records


def scrape(url: str, sample_name: str) -> float:
    """Return the sum of one sample name over all series of one scrape."""
    with httpx.Client(timeout=SCRAPE_TIMEOUT_SECONDS) as client:
        response = client.get(f"{url}/metrics")
    response.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == sample_name
    )


def wait_for_count(read: Callable[[], float], count: float, timeout: float) -> float:
    """Poll ``read()`` until it reaches ``count`` or ``timeout`` seconds pass.

    A call of a request whose client went away may end after the client
    returned, when the server notices the disconnect.

    Returns:
        The last value read, which the caller compares with ``count``.
    """
    deadline = time.monotonic() + timeout
    value = read()
    while value < count and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        value = read()
    return value
