from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmobs_core import bind_context, current_context, feature
from llmobs_core.context import (
    ContextThreadPoolExecutor,
    RequestState,
    current_feature,
    enter_request,
    exit_request,
    llmobs_request,
    run_in_context,
)


def test_current_context_none_outside_request() -> None:
    assert current_context() is None


def test_bind_context_as_context_manager_restores() -> None:
    tokens = enter_request(RequestState(request_id="r1", tenant_id="before"))
    try:
        with bind_context(tenant_id="inside", extra={"k": "v"}) as snapshot:
            assert snapshot.tenant_id == "inside"
            assert snapshot.extra == {"k": "v"}
        context = current_context()
        assert context is not None
        assert context.tenant_id == "before"
        assert context.extra == {}
    finally:
        exit_request(tokens)


def test_bind_context_plain_call_lasts() -> None:
    tokens = enter_request(RequestState(request_id="r1"))
    try:
        bind_context(region="eu-west-1")
        context = current_context()
        assert context is not None
        assert context.region == "eu-west-1"
    finally:
        exit_request(tokens)


def test_bind_context_outside_request_starts_state() -> None:
    with bind_context(tenant_id="batch"):
        context = current_context()
        assert context is not None
        assert context.request_id is None
        assert context.tenant_id == "batch"
    assert current_context() is None


def test_bind_context_rejects_unknown_name() -> None:
    with pytest.raises(TypeError, match=r"unknown attribute\(s\) \['tenant'\]"):
        bind_context(tenant="x")  # type: ignore[arg-type]


def test_bind_context_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="tenant_id=42"):
        bind_context(tenant_id=42)  # type: ignore[arg-type]


def test_snapshot_is_read_only() -> None:
    with bind_context(tenant_id="t"):
        snapshot = current_context()
        assert snapshot is not None
        with pytest.raises(AttributeError):
            snapshot.tenant_id = "other"  # type: ignore[misc]


def test_inner_task_changes_visible_to_owner() -> None:
    state = RequestState(request_id="r1")

    async def inner() -> None:
        bind_context(tenant_id="from-task")

    async def owner() -> None:
        tokens = enter_request(state)
        try:
            await asyncio.gather(inner())
            await asyncio.to_thread(bind_context, tenant_tier="from-thread")
        finally:
            exit_request(tokens)

    asyncio.run(owner())

    assert state.tenant_id == "from-task"
    assert state.tenant_tier == "from-thread"


def test_copied_context_thread_sees_request() -> None:
    tokens = enter_request(RequestState(request_id="r-thread"))
    try:
        copied = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=1) as pool:
            found = pool.submit(copied.run, current_context).result()
    finally:
        exit_request(tokens)

    assert found is not None
    assert found.request_id == "r-thread"


def test_feature_decorator_sync_and_async() -> None:
    @feature("sync.feature")
    def sync_work() -> str | None:
        return current_feature()

    @feature("async.feature")
    async def async_work() -> str | None:
        return current_feature()

    assert sync_work() == "sync.feature"
    assert asyncio.run(async_work()) == "async.feature"
    assert current_feature() is None


def test_feature_first_names_request() -> None:
    state = RequestState(request_id="r1", feature_name="from.route.map")
    tokens = enter_request(state)
    try:
        with feature("endpoint"):
            with feature("helper"):
                assert current_feature() == "helper"
            assert current_feature() == "endpoint"
    finally:
        exit_request(tokens)

    assert state.feature_name == "endpoint"


def test_feature_concurrent_tasks_isolated() -> None:
    async def work(name: str) -> str | None:
        with feature(name):
            await asyncio.sleep(0.01)
            return current_feature()

    async def main() -> list[str | None]:
        return await asyncio.gather(work("a"), work("b"))

    assert asyncio.run(main()) == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("", ValueError, id="empty"),
        pytest.param(3, TypeError, id="not-str"),
    ],
)
def test_feature_rejects_bad_name(name: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="feature"):
        feature(name)  # type: ignore[arg-type]


def test_feature_rejects_generator() -> None:
    def stream() -> object:
        yield "chunk"

    with pytest.raises(TypeError, match="generator function"):
        feature("chat")(stream)


def test_exit_request_from_foreign_context_clears() -> None:
    tokens = enter_request(RequestState(request_id="r1"))
    contextvars.copy_context().run(exit_request, tokens)
    exit_request(tokens)

    assert llmobs_request.get() is None


def test_run_in_context_carries_request() -> None:
    tokens = enter_request(RequestState(request_id="r-wrapped"))
    try:
        wrapped = run_in_context(current_context)
    finally:
        exit_request(tokens)

    with ThreadPoolExecutor(max_workers=2) as pool:
        found = [pool.submit(wrapped).result() for _ in range(2)]

    assert [context.request_id if context else None for context in found] == [
        "r-wrapped",
        "r-wrapped",
    ]


def test_run_in_context_same_wrapper_concurrently() -> None:
    barrier = threading.Barrier(2)

    def wait_and_read() -> str | None:
        barrier.wait(timeout=5)
        context = current_context()
        return context.request_id if context else None

    tokens = enter_request(RequestState(request_id="r-shared"))
    try:
        wrapped = run_in_context(wait_and_read)
    finally:
        exit_request(tokens)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(wrapped) for _ in range(2)]
        results = [future.result(timeout=5) for future in futures]

    assert results == ["r-shared", "r-shared"]


def test_context_executor_copies_per_task() -> None:
    state = RequestState(request_id="r-pool")
    tokens = enter_request(state)
    try:
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            ids = list(pool.map(lambda _: current_context(), range(4)))
            pool.submit(bind_context, tenant_id="from-pool").result()
    finally:
        exit_request(tokens)

    assert [context.request_id if context else None for context in ids] == [
        "r-pool"
    ] * 4
    assert state.tenant_id == "from-pool"


def test_plain_executor_sees_no_request() -> None:
    tokens = enter_request(RequestState(request_id="r-plain"))
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            found = pool.submit(current_context).result()
    finally:
        exit_request(tokens)

    assert found is None
