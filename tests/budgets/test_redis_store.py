from __future__ import annotations

import logging
import sys
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from llmobs_core.budgets import (
    Budget,
    BudgetBook,
    BudgetOutcome,
    BudgetStoreError,
    RedisBudgetStore,
)
from tests.budgets._redis import free_port
from tests.budgets.conftest import FakeClock


def test_redis_store_adds_and_reads(redis_url: str, redis_client: Any) -> None:
    store = RedisBudgetStore(redis_url, key_prefix="test:")
    assert store.add("a", 0.25, 120) == pytest.approx(0.25)
    assert store.add("a", 0.5, 120) == pytest.approx(0.75)
    assert store.get_many(["a", "missing"]) == [pytest.approx(0.75), 0.0]
    assert store.get_many([]) == []
    assert 0 < redis_client.ttl("test:a") <= 120


def test_redis_store_shared_between_books(
    redis_url: str, redis_client: Any, clock: FakeClock
) -> None:
    budget = Budget(name="chat", limit_usd=1.0)
    books = [
        BudgetBook(
            [budget],
            store=RedisBudgetStore(redis_url),
            clock=clock,
            registry=CollectorRegistry(),
        )
        for _ in range(2)
    ]
    books[0].add_spend(0.6)
    books[1].add_spend(0.4)
    decision = books[0].decide()
    assert decision.denied
    assert decision.spent_usd == pytest.approx(1.0)
    assert redis_client.keys("llmobs:budget:*") == [
        b"llmobs:budget:chat:day:20260304T00"
    ]


def test_redis_store_accepts_client(redis_url: str, redis_client: Any) -> None:
    store = RedisBudgetStore(client=redis_client)
    store.add("b", 1.5, 60)
    assert float(redis_client.get("llmobs:budget:b")) == 1.5


def test_redis_store_needs_url_or_client() -> None:
    with pytest.raises(ValueError, match="url='redis://host:port/db'"):
        RedisBudgetStore()


def test_redis_unreachable_fails_open(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on a port that was just free, so connecting is refused.
    url = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisBudgetStore(url)
    with pytest.raises(BudgetStoreError, match="reading spend"):
        store.get_many(["a"])
    registry = CollectorRegistry()
    book = BudgetBook(
        [Budget(name="chat", limit_usd=1.0)],
        store=store,
        clock=clock,
        registry=registry,
    )
    with caplog.at_level(logging.WARNING, logger="llmobs_core.budgets"):
        decisions = [book.decide() for _ in range(5)]
        book.add_spend(0.5)
    assert {d.outcome for d in decisions} == {BudgetOutcome.ALLOW}
    assert all(d.store_failed for d in decisions)
    assert (
        registry.get_sample_value(
            "llm_budget_store_errors_total", {"operation": "read"}
        )
        == 5
    )
    assert (
        registry.get_sample_value(
            "llm_budget_store_errors_total", {"operation": "write"}
        )
        == 1
    )
    # Rate-limited: one warning for the five failed reads, one for the write.
    warnings = [r for r in caplog.records if r.name == "llmobs_core.budgets"]
    assert len(warnings) == 2


def test_redis_missing_package_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pip install 'llmobs\[budgets\]'"):
        RedisBudgetStore("redis://127.0.0.1:1/0")
