from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace

import llmobs_core as llmobs
from tests.conftest import Observed


def test_sync_stage_not_current_between_chunks(observed: Observed) -> None:
    def chunks() -> Iterator[str]:
        with llmobs.call_llm(model="m") as call:
            for _ in range(3):
                call.mark_first_token()
                yield f"{trace.get_current_span().get_span_context().span_id:x}"

    seen_outside: list[int] = []
    inside: list[str] = []
    for value in llmobs.isolate_generator(chunks()):
        inside.append(value)
        seen_outside.append(trace.get_current_span().get_span_context().span_id)

    call_span_id = f"{observed.span('call_llm').context.span_id:x}"
    assert inside == [call_span_id] * 3
    assert seen_outside == [0, 0, 0]
    assert observed.events[0]["status"] == "ok"


def test_sync_isolated_close_cancels(observed: Observed) -> None:
    def chunks() -> Iterator[int]:
        with llmobs.call_llm(model="m"):
            yield 1
            yield 2

    stream = llmobs.isolate_generator(chunks())
    next(stream)
    stream.close()

    assert observed.events[0]["status"] == "cancelled"
    assert trace.get_current_span().get_span_context().is_valid is False


def test_async_stage_isolated_and_closed_elsewhere(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    async def chunks() -> AsyncIterator[int]:
        with llmobs.call_llm(model="m") as call:
            for index in range(5):
                call.mark_first_token()
                await asyncio.sleep(0)
                yield index

    async def consume() -> list[bool]:
        stream = llmobs.isolate_generator(chunks())
        current: list[bool] = []
        await anext(stream)
        current.append(trace.get_current_span().get_span_context().is_valid)
        await anext(stream)
        current.append(trace.get_current_span().get_span_context().is_valid)
        await asyncio.create_task(stream.aclose())
        return current

    with caplog.at_level(logging.DEBUG):
        current = asyncio.run(consume())

    assert current == [False, False]
    assert observed.events[0]["status"] == "cancelled"
    assert "Failed to detach context" not in caplog.text


def test_async_concurrent_streams_keep_parents(observed: Observed) -> None:
    tracer = observed.provider.get_tracer("test")

    async def chunks(name: str) -> AsyncIterator[str]:
        async with llmobs.retrieve_context(source=name):
            for _ in range(3):
                await asyncio.sleep(0.001)
                yield name

    async def main() -> None:
        with tracer.start_as_current_span("request"):
            streams = [llmobs.isolate_generator(chunks(n)) for n in ("a", "b")]

        async def drain(stream: AsyncIterator[str]) -> None:
            async for _ in stream:
                pass

        await asyncio.gather(*(drain(stream) for stream in streams))

    asyncio.run(main())

    request_id = observed.span("request").context.span_id
    stages = [s for s in observed.spans if s.name == "retrieve_context"]
    assert len(stages) == 2
    for stage in stages:
        assert stage.parent is not None
        assert stage.parent.span_id == request_id


def test_isolate_rejects_non_generator() -> None:
    with pytest.raises(TypeError, match="call the generator function"):
        llmobs.isolate_generator([1, 2])  # type: ignore[call-overload]


def test_task_group_stages_parent_to_caller(observed: Observed) -> None:
    import anyio

    tracer = observed.provider.get_tracer("test")

    async def stage(name: str) -> None:
        async with llmobs.retrieve_context(source=name):
            await asyncio.sleep(0.001)

    async def with_asyncio() -> None:
        with tracer.start_as_current_span("asyncio-request"):
            async with asyncio.TaskGroup() as group:
                for name in ("a", "b", "c"):
                    group.create_task(stage(name))

    async def with_anyio() -> None:
        with tracer.start_as_current_span("anyio-request"):
            async with anyio.create_task_group() as group:
                for name in ("d", "e"):
                    group.start_soon(stage, name)

    asyncio.run(with_asyncio())
    anyio.run(with_anyio)

    parents = {
        span.attributes["source"]: span.parent.span_id
        for span in observed.spans
        if span.name == "retrieve_context" and span.parent and span.attributes
    }
    asyncio_id = observed.span("asyncio-request").context.span_id
    anyio_id = observed.span("anyio-request").context.span_id
    assert parents == {
        "a": asyncio_id,
        "b": asyncio_id,
        "c": asyncio_id,
        "d": anyio_id,
        "e": anyio_id,
    }
