from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.budgets._redis import REDIS_SERVER, run_redis_server


class FakeClock:
    """A settable UTC clock for BudgetBook."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 4, 10, 30, tzinfo=UTC))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip(
            "redis-server not found; install Debian's redis-server package "
            "(make tools does)"
        )
    with run_redis_server() as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    try:
        yield client
    finally:
        client.close()
