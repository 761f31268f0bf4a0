"""call.wrap_stream(): chunks pass through; the call ends once, however the
stream ends."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from llmobs_core import call_llm, current_call
from tests.conftest import Observed, span_times


def chat_chunks(words: int, *, usage: bool = True) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = [
        {
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": f"word{index} "}}],
        }
        for index in range(words)
    ]
    if usage:
        chunks.append(
            {
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini",
                "choices": [],
                "usage": {"prompt_tokens": 20, "completion_tokens": words},
            }
        )
    return chunks


class ClosableStream:
    """A provider stream stand-in that records whether it was closed."""

    def __init__(self, chunks: list[dict[str, Any]], fail_after: int | None = None):
        self.chunks = chunks
        self.fail_after = fail_after
        self.closed = False
        self.response = "sdk-attribute"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_after:
                raise ConnectionError("stream broke")
            yield chunk

    def close(self) -> None:
        self.closed = True


class AsyncClosableStream:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            yield chunk

    async def close(self) -> None:
        self.closed = True


def test_sync_stream_consumed_after_block(observed: Observed) -> None:
    chunks = chat_chunks(3)
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        wrapped = call.wrap_stream(ClosableStream(chunks))

    assert observed.events == []
    assert list(wrapped) == chunks

    (event,) = observed.events
    assert event["status"] == "ok"
    assert event["streaming"] is True
    assert event["chunk_count"] == 4
    assert event["input_tokens"] == 20
    assert event["output_tokens"] == 3
    assert event["usage_estimated"] is False
    assert event["time_to_first_token_ms"] is not None
    assert observed.names() == ["call_llm"]


def test_sync_stream_span_lasts_until_end(observed: Observed) -> None:
    tracer = observed.provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        with call_llm(model="gpt-4o-mini") as call:
            wrapped = call.wrap_stream(ClosableStream(chat_chunks(2)))
        with tracer.start_as_current_span("between"):
            pass
        list(wrapped)

    _, call_end = span_times(observed.span("call_llm"))
    _, between_end = span_times(observed.span("between"))
    assert call_end >= between_end


def test_sync_stream_closed_early_cancelled(observed: Observed) -> None:
    stream = ClosableStream(chat_chunks(5))
    with call_llm(model="gpt-4o-mini") as call:
        wrapped = call.wrap_stream(stream)
        iterator = iter(wrapped)
        next(iterator)
        next(iterator)
    wrapped.close()
    wrapped.close()

    (event,) = observed.events
    assert stream.closed is True
    assert event["status"] == "cancelled"
    assert event["chunk_count"] == 2
    assert event["output_tokens"] == 3
    assert event["usage_estimated"] is True


def test_sync_stream_break_in_with_block(observed: Observed) -> None:
    with (
        call_llm(model="gpt-4o-mini") as call,
        call.wrap_stream(ClosableStream(chat_chunks(5))) as wrapped,
    ):
        for _ in wrapped:
            break

    assert [e["status"] for e in observed.events] == ["cancelled"]


def test_sync_stream_garbage_collected(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        wrapped = call.wrap_stream(ClosableStream(chat_chunks(5)))
    next(iter(wrapped))
    del wrapped
    gc.collect()

    (event,) = observed.events
    assert event["status"] == "cancelled"
    assert event["chunk_count"] == 1


def test_sync_stream_failure_status(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        wrapped = call.wrap_stream(ClosableStream(chat_chunks(5), fail_after=2))

    with pytest.raises(ConnectionError):
        list(wrapped)

    (event,) = observed.events
    assert event["status"] == "error"
    assert event["error_type"] == "ConnectionError"
    assert event["chunk_count"] == 2


def test_stream_passes_attributes_through(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        wrapped = call.wrap_stream(ClosableStream(chat_chunks(1)))
        assert wrapped.response == "sdk-attribute"
        list(wrapped)


def test_error_in_block_ends_call_once(observed: Observed) -> None:
    wrapped: list[Any] = []

    def handler() -> None:
        with call_llm(model="gpt-4o-mini") as call:
            wrapped.append(call.wrap_stream(ClosableStream(chat_chunks(3))))
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        handler()
    list(wrapped[0])

    assert [e["status"] for e in observed.events] == ["error"]


def test_async_stream_consumed_later(observed: Observed) -> None:
    async def main() -> list[Any]:
        with call_llm(model="gpt-4o-mini", provider="openai") as call:
            wrapped = call.wrap_stream(AsyncClosableStream(chat_chunks(4)))
        return [chunk async for chunk in wrapped]

    chunks = asyncio.run(main())

    assert len(chunks) == 5
    (event,) = observed.events
    assert event["status"] == "ok"
    assert event["output_tokens"] == 4


def test_async_stream_aclose_cancelled(observed: Observed) -> None:
    stream = AsyncClosableStream(chat_chunks(4))

    async def main() -> None:
        with call_llm(model="gpt-4o-mini") as call:
            wrapped = call.wrap_stream(stream)
        async with wrapped:
            await anext(wrapped)
            await anext(wrapped)

    asyncio.run(main())

    (event,) = observed.events
    assert stream.closed is True
    assert event["status"] == "cancelled"
    assert event["chunk_count"] == 2


def test_stream_without_usage_estimates(observed: Observed) -> None:
    prompt = "x" * 400
    with call_llm(model="gpt-4o-mini", provider="openai", prompt=prompt) as call:
        wrapped = call.wrap_stream(ClosableStream(chat_chunks(4, usage=False)))
    list(wrapped)

    event = observed.events[0]
    assert event["usage_estimated"] is True
    assert event["input_tokens"] == 100
    # four chunks of "wordN " are 24 characters
    assert event["output_tokens"] == 6


def test_wrap_stream_rejects_non_iterable(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        value = call.wrap_stream(42)

    assert value == 42
    assert [e["status"] for e in observed.events] == ["ok"]
    assert "needs an iterator" in caplog.text


def test_stage_metric_counted_once_for_stream(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        wrapped = call.wrap_stream(ClosableStream(chat_chunks(2)))
    list(wrapped)
    wrapped.close()

    count = observed.sample(
        "llm_stage_duration_ms_count", feature_name="unknown", stage="call_llm"
    )
    assert count == 1


def test_cancelled_stream_span_not_error(observed: Observed) -> None:
    from opentelemetry.trace import StatusCode

    def generate() -> Iterator[int]:
        with call_llm(model="gpt-4o-mini", streaming=True) as call:
            for index in range(5):
                call.mark_first_token()
                yield index

    chunks = generate()
    next(chunks)
    chunks.close()

    span = observed.span("call_llm")
    assert observed.events[0]["status"] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET
    assert [event.name for event in span.events] == []


def _without_object(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in chunk.items() if k != "object"} for chunk in chunks]


def test_stream_dicts_without_object_counted(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini", provider="openai") as call:
        wrapped = call.wrap_stream(_without_object(chat_chunks(3)))
    list(wrapped)

    (event,) = observed.events
    assert event["input_tokens"] == 20
    assert event["output_tokens"] == 3
    assert event["usage_estimated"] is False
    assert event["cost_usd"] is not None


def test_stream_dicts_without_object_estimated(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini", provider="openai", prompt="x" * 40) as call:
        wrapped = call.wrap_stream(_without_object(chat_chunks(4, usage=False)))
    list(wrapped)

    (event,) = observed.events
    assert event["usage_estimated"] is True
    assert event["input_tokens"] == 10
    assert event["output_tokens"] == 6


def test_block_exit_during_stream_end_keeps_the_error(
    observed: Observed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stream fails on another thread, and the block exits while that
    # thread is still ending the call: the event must carry the failure.
    from llmobs_core._call import LLMCall

    entered, release = threading.Event(), threading.Event()
    end_stream = LLMCall._end_stream

    def held_end(self: LLMCall, error: BaseException | None, cancelled: bool) -> None:
        entered.set()
        assert release.wait(10)
        end_stream(self, error, cancelled)

    monkeypatch.setattr(LLMCall, "_end_stream", held_end)
    failures: list[BaseException] = []

    def consume(stream: Any) -> None:
        try:
            list(stream)
        except ConnectionError as error:
            failures.append(error)

    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(ClosableStream(chat_chunks(3), fail_after=1))
        consumer = threading.Thread(target=consume, args=(stream,))
        consumer.start()
        assert entered.wait(10)
    release.set()
    consumer.join(10)

    assert len(failures) == 1
    [event] = observed.events
    assert event["status"] == "error"
    assert event["error_type"] == "ConnectionError"
    assert observed.span("call_llm").status.status_code is StatusCode.ERROR


def test_second_wrap_stream_returned_unwrapped(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    second_chunks = ClosableStream(chat_chunks(5))
    with call_llm(model="gpt-4o-mini") as call:
        first = call.wrap_stream(ClosableStream(chat_chunks(2)))
        second = call.wrap_stream(second_chunks)
    list(second)
    list(first)

    assert second is second_chunks
    assert "wrap_stream() called again" in caplog.text
    [event] = observed.events
    assert (event["status"], event["chunk_count"]) == ("ok", 3)


def test_decorated_function_returning_stream_records_chunks(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    @call_llm(model="gpt-4o-mini")
    def chat() -> Any:
        call = current_call()
        assert call is not None
        return call.wrap_stream(ClosableStream(chat_chunks(2)))

    list(chat())

    assert "no usage adapter" not in caplog.text
    [event] = observed.events
    assert (event["input_tokens"], event["output_tokens"]) == (20, 2)


EXIT_SCRIPT = """
import os
import sys
import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import llmobs_core
from llmobs_core import call_llm

provider = TracerProvider()
provider.add_span_processor(
    SimpleSpanProcessor(
        ConsoleSpanExporter(
            out=sys.stdout, formatter=lambda span: f"SPAN {span.name}\\n"
        )
    )
)
llmobs_core.configure(tracer_provider=provider, hash_key="k" * 32)
llmobs_core.install_json_handler(sys.stdout)
CHUNK = {
    "object": "chat.completion.chunk",
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "ok"}}],
}


def chunks():
    for _ in range(1000):
        time.sleep(0.001)
        yield CHUNK


mode = sys.argv[1]
if mode == "reconfigure":
    # A provider made after the first wrapped stream shuts down at exit
    # after the open calls have ended.
    with call_llm(model="gpt-4o-mini") as call:
        list(call.wrap_stream(iter([CHUNK])))
    llmobs_core.flush()
    provider.force_flush()
    print("FIRST", flush=True)
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            ConsoleSpanExporter(
                out=sys.stdout, formatter=lambda span: f"SPAN {span.name}\\n"
            )
        )
    )
    llmobs_core.configure(tracer_provider=provider, hash_key="k" * 32)
if mode in ("after_block", "fork", "reconfigure"):
    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(chunks())
    next(stream)
if mode == "fork":
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # the child's exit hooks run; its copy must stay silent
    os.waitpid(pid, 0)
if mode == "in_block":
    # A suspended generator and a daemon thread never leave their blocks.
    def body():
        with call_llm(model="gpt-4o-mini") as call:
            for chunk in call.wrap_stream(chunks()):
                yield chunk

    def read():
        with call_llm(model="gpt-4o-mini") as call:
            for _chunk in call.wrap_stream(chunks()):
                pass

    generator = body()
    next(generator)
    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.05)
if mode == "shutdown":
    # The process stops without exit hooks, after calling shutdown().
    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(chunks())
    next(stream)
    llmobs_core.shutdown()
    provider.force_flush()
    sys.stdout.flush()
    os._exit(0)
if mode == "fork_in_block":
    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(chunks())
        next(stream)
        pid = os.fork()
        if pid == 0:
            sys.exit(3)  # leaves the block with SystemExit in the child only
    os.waitpid(pid, 0)
    for _chunk in stream:
        pass
"""


@pytest.mark.parametrize(
    ("mode", "statuses"),
    [
        ("after_block", ["cancelled"]),
        ("fork", ["cancelled"]),
        ("in_block", ["cancelled", "cancelled"]),
        ("fork_in_block", ["ok"]),
        ("shutdown", ["cancelled"]),
        ("reconfigure", ["cancelled"]),
    ],
)
def test_unfinished_stream_ends_at_exit(
    tmp_path: Any, mode: str, statuses: list[str]
) -> None:
    import json
    import subprocess
    import sys

    script = tmp_path / "unfinished.py"
    script.write_text(EXIT_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "failed" not in done.stderr
    lines = done.stdout.splitlines()
    if mode == "reconfigure":
        lines = lines[lines.index("FIRST") + 1 :]
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert sorted(event["status"] for event in events) == statuses, done.stdout
    assert lines.count("SPAN call_llm") == len(statuses)


def fail_in_stream_loop() -> None:
    with call_llm(model="gpt-4o-mini") as call:
        for _chunk in call.wrap_stream(ClosableStream(chat_chunks(3))):
            raise ValueError("handler failed")


def fail_in_stream_context() -> None:
    with (
        call_llm(model="gpt-4o-mini") as call,
        call.wrap_stream(ClosableStream(chat_chunks(3))) as stream,
    ):
        next(iter(stream))
        raise ValueError("handler failed")


def fail_in_async_stream_loop() -> None:
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        for chunk in chat_chunks(3):
            yield chunk

    async def run() -> None:
        async with call_llm(model="gpt-4o-mini") as call:
            async for _chunk in call.wrap_stream(chunks()):
                raise ValueError("handler failed")

    asyncio.run(run())


@pytest.mark.parametrize(
    "fail", [fail_in_stream_loop, fail_in_stream_context, fail_in_async_stream_loop]
)
def test_error_in_stream_loop_is_the_status(
    observed: Observed, fail: Callable[[], None]
) -> None:
    # The exception drops the loop's wrapper before the block exits; the
    # wrapper's end must not record the call as cancelled.
    with pytest.raises(ValueError, match="handler failed"):
        fail()

    [event] = observed.events
    assert (event["status"], event["error_type"]) == ("error", "ValueError")
    assert event["chunk_count"] == 1
    assert observed.span("call_llm").status.status_code is StatusCode.ERROR


def test_break_in_block_then_exit_is_cancelled(observed: Observed) -> None:
    with call_llm(model="gpt-4o-mini") as call:
        for _chunk in call.wrap_stream(ClosableStream(chat_chunks(3))):
            break

    [event] = observed.events
    assert (event["status"], event["chunk_count"]) == ("cancelled", 1)


def test_generator_send_records_chunks(observed: Observed) -> None:
    def generator() -> Iterator[dict[str, Any]]:
        yield from chat_chunks(4)

    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(generator())
        received = [next(stream)]
        for _ in range(4):
            received.append(stream.send(None))
        with pytest.raises(StopIteration):
            stream.send(None)

    assert len(received) == 5
    [event] = observed.events
    assert (event["status"], event["chunk_count"]) == ("ok", 5)
    assert (event["input_tokens"], event["output_tokens"]) == (20, 4)


def test_generator_throw_ends_with_its_error(observed: Observed) -> None:
    def generator() -> Iterator[dict[str, Any]]:
        yield from chat_chunks(4)

    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(generator())
        next(stream)
        with pytest.raises(TimeoutError):
            stream.throw(TimeoutError("provider timed out"))
        [event] = observed.events

    assert (event["status"], event["error_type"]) == ("timeout", "TimeoutError")


def test_async_generator_asend_records_chunks(observed: Observed) -> None:
    async def generator() -> AsyncIterator[dict[str, Any]]:
        for chunk in chat_chunks(2):
            yield chunk

    async def run() -> int:
        async with call_llm(model="gpt-4o-mini") as call:
            stream = call.wrap_stream(generator())
            received = [await stream.asend(None) for _ in range(3)]
            with pytest.raises(StopAsyncIteration):
                await stream.asend(None)
        return len(received)

    assert asyncio.run(run()) == 3
    [event] = observed.events
    assert (event["status"], event["chunk_count"]) == ("ok", 3)


class SendingStream(ClosableStream):
    """A stream whose own send() writes to the provider, as a websocket's does."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        super().__init__(chunks)
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


def test_stream_send_method_not_a_chunk(observed: Observed) -> None:
    raw = SendingStream(chat_chunks(2))
    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(raw)
        stream.send({"type": "response.create"})
        received = list(stream)

    assert raw.sent == [{"type": "response.create"}]
    assert len(received) == 3
    [event] = observed.events
    assert (event["status"], event["chunk_count"]) == ("ok", 3)


def test_rejected_send_leaves_call_open(observed: Observed) -> None:
    def generator() -> Iterator[dict[str, Any]]:
        yield from chat_chunks(2)

    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(generator())
        with pytest.raises(TypeError):
            stream.send("too early")  # a generator that has not started
        received = list(stream)

    assert len(received) == 3
    [event] = observed.events
    assert (event["status"], event["chunk_count"]) == ("ok", 3)


def test_concurrent_read_of_iter_generator_ends_nothing(observed: Observed) -> None:
    # A stream whose __iter__ is a generator function (the openai SDK's
    # Stream): a second reader's "generator already executing" leaves it open.
    entered, release = threading.Event(), threading.Event()

    class Stream:
        def __iter__(self) -> Iterator[dict[str, Any]]:
            chunks = chat_chunks(2)
            yield chunks[0]
            entered.set()
            assert release.wait(10)
            yield from chunks[1:]

    with call_llm(model="gpt-4o-mini") as call:
        stream = call.wrap_stream(Stream())
    next(stream)
    reader = threading.Thread(target=next, args=(stream,))
    reader.start()
    assert entered.wait(10)
    with pytest.raises(ValueError, match="already executing"):
        next(stream)
    release.set()
    reader.join(10)
    rest = list(stream)

    assert len(rest) == 1
    [event] = observed.events
    assert (event["status"], event["chunk_count"]) == ("ok", 3)
