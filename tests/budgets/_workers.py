"""Processes of the concurrent-spend test; importable by spawned children."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

import llmobs_core
from llmobs_core.budgets import Budget, BudgetBook, RedisBudgetStore, budget_decision

HASH_KEY = "test-hash-key-0123456789abcdef"
# $1 per million input tokens.
PRICES = {"test-model": {"input": 1.0, "output": 1.0}}
MIN_TOKENS = 10_000
MAX_TOKENS = 50_000


@dataclass
class WorkerResult:
    """What one process's threads saw: spend read at each allowed decision,
    the cost of each allowed call, and how many decisions denied."""

    spent_at_allow: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    denied: int = 0


def run_calls(
    redis_url: str, limit_usd: float, threads: int, seed: int, start: Any, out: Any
) -> None:
    """Run ``threads`` threads that make calls until the budget denies one."""
    registry = CollectorRegistry()
    book = BudgetBook(
        [Budget(name="chat", scope={"feature_name": "chat"}, limit_usd=limit_usd)],
        store=RedisBudgetStore(redis_url, timeout_seconds=5.0),
        registry=registry,
    )
    llmobs_core.configure(
        emitters=[], registry=registry, hash_key=HASH_KEY, prices=PRICES, budgets=book
    )
    result = WorkerResult()
    lock = threading.Lock()
    ready = threading.Barrier(threads)
    workers = [
        threading.Thread(
            target=_call_until_denied,
            args=(random.Random(seed + i), ready, result, lock),
        )
        for i in range(threads)
    ]
    start.wait()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(result)


def _call_until_denied(
    rng: random.Random, ready: threading.Barrier, result: WorkerResult, lock: Any
) -> None:
    ready.wait()
    while True:
        decision = budget_decision(feature_name="chat")
        if decision.denied:
            with lock:
                result.denied += 1
            return
        tokens = rng.randint(MIN_TOKENS, MAX_TOKENS)
        with llmobs_core.observe_llm_call("chat", "test-model") as call:
            time.sleep(rng.uniform(0.001, 0.01))  # the provider's latency
            call.set_usage(input_tokens=tokens, output_tokens=0)
        assert decision.spent_usd is not None
        with lock:
            result.spent_at_allow.append(decision.spent_usd)
            result.costs.append(tokens / 1_000_000)
