"""Spend counters for cost budgets: one process's memory, or Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BudgetStore",
    "BudgetStoreError",
    "InMemoryBudgetStore",
    "RedisBudgetStore",
]

REDIS_INSTALL_HINT = "pip install 'llmobs[budgets]'"


class BudgetStoreError(Exception):
    """A budget store could not read or add spend."""


@runtime_checkable
class BudgetStore(Protocol):
    """Counter of US dollars spent, one per budget and period key.

    Implementations must be thread-safe. A key expires ``ttl_seconds`` after
    its last write, so finished periods do not pile up.
    """

    def add(self, key: str, amount_usd: float, ttl_seconds: int) -> float:
        """Add ``amount_usd`` to the key's spend and return the new total.

        Raises:
            BudgetStoreError: If the store cannot be written.
        """

    def get_many(self, keys: Sequence[str]) -> list[float]:
        """Return the spend of each key, 0.0 for keys never written.

        Raises:
            BudgetStoreError: If the store cannot be read.
        """


class InMemoryBudgetStore:
    """Spend kept in this process's memory: not shared with other processes.

    Args:
        clock: Seconds on a monotonic scale, for expiring keys; ``time.monotonic``
            by default.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._spend: dict[str, float] = {}
        self._expires: dict[str, float] = {}

    def add(self, key: str, amount_usd: float, ttl_seconds: int) -> float:
        """Add ``amount_usd`` to the key's spend and return the new total."""
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            total = self._spend.get(key, 0.0) + amount_usd
            self._spend[key] = total
            self._expires[key] = now + ttl_seconds
        return total

    def get_many(self, keys: Sequence[str]) -> list[float]:
        """Return the spend of each key, 0.0 for keys never written."""
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            return [self._spend.get(key, 0.0) for key in keys]

    def _drop_expired(self, now: float) -> None:
        expired = [key for key, end in self._expires.items() if end <= now]
        for key in expired:
            del self._spend[key]
            del self._expires[key]


class RedisBudgetStore:
    """Spend shared by every process that uses the same Redis server.

    Each addition is one ``MULTI``/``EXEC`` transaction of ``INCRBYFLOAT``
    and ``EXPIRE``, so concurrent additions from many processes are never
    lost. Needs the ``redis`` package: ``pip install 'llmobs[budgets]'``.

    Args:
        url: Redis URL, for example ``redis://127.0.0.1:6379/0``; ignored
            when ``client`` is given.
        client: A ``redis.Redis`` client to use instead of one built from
            ``url``.
        key_prefix: Prefix of every key this store writes.
        timeout_seconds: Connect and socket timeout of the client built from
            ``url``, in seconds. Budget checks run on the request path, so
            keep it short.

    Raises:
        ImportError: If the ``redis`` package is not installed.
        ValueError: If neither ``url`` nor ``client`` is given.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        key_prefix: str = "llmobs:budget:",
        timeout_seconds: float = 0.25,
    ) -> None:
        redis = _import_redis()
        if client is None:
            if not url:
                raise ValueError(
                    "RedisBudgetStore needs url='redis://host:port/db' or "
                    f"client=redis.Redis(...), got url={url!r}"
                )
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
            )
        self._client = client
        self._prefix = key_prefix
        self._errors: tuple[type[BaseException], ...] = (
            redis.RedisError,
            OSError,
        )

    def add(self, key: str, amount_usd: float, ttl_seconds: int) -> float:
        """Add ``amount_usd`` to the key's spend and return the new total.

        Raises:
            BudgetStoreError: If Redis cannot be reached or rejects the write.
        """
        name = self._prefix + key
        try:
            pipeline = self._client.pipeline(transaction=True)
            pipeline.incrbyfloat(name, amount_usd)
            pipeline.expire(name, ttl_seconds)
            total, _ = pipeline.execute()
        except self._errors as error:
            raise BudgetStoreError(
                f"adding spend to Redis key {name!r} failed: {error}"
            ) from (error)
        return float(total)

    def get_many(self, keys: Sequence[str]) -> list[float]:
        """Return the spend of each key, 0.0 for keys never written.

        Raises:
            BudgetStoreError: If Redis cannot be reached.
        """
        if not keys:
            return []
        names = [self._prefix + key for key in keys]
        try:
            values = self._client.mget(names)
        except self._errors as error:
            raise BudgetStoreError(
                f"reading spend from Redis keys {names!r} failed: {error}"
            ) from (error)
        return [float(value) if value is not None else 0.0 for value in values]


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as error:
        raise ImportError(
            "RedisBudgetStore needs the redis package, which is not installed; "
            f"run {REDIS_INSTALL_HINT}"
        ) from error
    return redis
