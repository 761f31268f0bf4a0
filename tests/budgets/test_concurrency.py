from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from tests.budgets._workers import MAX_TOKENS, WorkerResult, run_calls

PROCESSES = 2
THREADS_PER_PROCESS = 50
LIMIT_USD = 5.0
MAX_CALL_COST_USD = MAX_TOKENS / 1_000_000


def test_concurrent_calls_overspend_bound(redis_url: str, redis_client: Any) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    out = context.Queue()
    processes = [
        context.Process(
            target=run_calls,
            args=(redis_url, LIMIT_USD, THREADS_PER_PROCESS, 1000 * i, start, out),
        )
        for i in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        results: list[WorkerResult] = [out.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    costs = [cost for r in results for cost in r.costs]
    stored = float(redis_client.get(redis_client.keys("llmobs:budget:chat:*")[0]))
    # Every allowed call's cost reached the store: no update was lost.
    assert stored == pytest.approx(sum(costs), rel=1e-9)
    # Every allowed call read a spend below the limit, and every thread
    # stopped at a deny, which reads a spend at or above it.
    assert max(s for r in results for s in r.spent_at_allow) < LIMIT_USD
    assert sum(r.denied for r in results) == PROCESSES * THREADS_PER_PROCESS
    assert stored >= LIMIT_USD
    # Each thread has at most one call in flight, so the overspend is below
    # the cost of one call per thread.
    concurrency = PROCESSES * THREADS_PER_PROCESS
    assert stored - LIMIT_USD < concurrency * MAX_CALL_COST_USD
