"""Wrappers that observe a provider stream's chunks and end the call once."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from llmobs_core._ratelimit import RateLimitedWarning

logger = logging.getLogger("llmobs_core.stages")
_warning = RateLimitedWarning(logger)

T = TypeVar("T")

OnChunk = Callable[[Any], None]
OnEnd = Callable[[BaseException | None, bool], None]
"""Called once with the error that ended the stream (or None) and whether
the stream stopped before its end."""


class StreamEnd:
    """The once-only end of a wrapped stream.

    The call keeps this object, not the wrapper, so that a wrapper dropped by
    its consumer is collected at once and its ``__del__`` ends the call.
    """

    __slots__ = ("_lock", "_on_end", "ended")

    def __init__(self, on_end: OnEnd) -> None:
        self._on_end: OnEnd | None = on_end
        self._lock = threading.Lock()
        self.ended = False

    def end(self, error: BaseException | None, cancelled: bool) -> None:
        """Run the end callback, the first time only.

        ``ended`` turns True once the callback has returned.
        """
        with self._lock:
            # The callback is a method of the call that keeps this object:
            # dropping it breaks that reference cycle, so the call and its
            # span are freed without waiting for the garbage collector.
            on_end, self._on_end = self._on_end, None
        if on_end is None:
            return
        try:
            on_end(error, cancelled)
        except Exception:
            logger.warning("ending an LLM call stream failed", exc_info=True)
        finally:
            self.ended = True


# Generator methods that advance the stream, besides next() and anext().
_SYNC_STEPS = frozenset({"send", "throw"})
_ASYNC_STEPS = frozenset({"asend", "athrow"})


class SyncStreamWrapper(Generic[T]):
    """Iterator over a sync stream that records each chunk.

    Attributes and methods it does not define are those of the stream.
    """

    def __init__(self, stream: Any, on_chunk: OnChunk, end: StreamEnd) -> None:
        self._stream = stream
        self._iterator: Iterator[T] | None = None
        self._on_chunk = _guarded(on_chunk)
        self._end = end

    @property
    def ended(self) -> bool:
        """Whether the call already ended."""
        return self._end.ended

    def __iter__(self) -> SyncStreamWrapper[T]:
        return self

    def __next__(self) -> T:
        if self._iterator is None:
            self._iterator = iter(self._stream)
        return self._advance(next, self._iterator)

    def _advance(self, step: Callable[..., T], *args: Any) -> T:
        """Take the next chunk with ``step(*args)``, recording it or the end.

        An error that leaves a generator open was raised before it ran (a
        value sent to a generator that has not started), so it does not end
        the call.
        """
        try:
            chunk = step(*args)
        except StopIteration:
            self._end.end(None, False)
            raise
        except BaseException as error:
            source = self._stream if self._iterator is None else self._iterator
            if not (inspect.isgenerator(source) and source.gi_frame is not None):
                self._end.end(error, False)
            raise
        self._on_chunk(chunk)
        return chunk

    def close(self) -> None:
        """Close the stream; the call ends as ``cancelled`` if unfinished."""
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            self._end.end(None, True)

    def __enter__(self) -> SyncStreamWrapper[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._stream, name)
        if name in _SYNC_STEPS and inspect.isgenerator(self._stream):
            # A generator's send() and throw() advance it as next() does;
            # other objects' send() (a websocket's, say) do not.
            return functools.partial(self._advance, value)
        return value

    def __del__(self) -> None:
        # A stream dropped unfinished (garbage collected) still ends its call.
        end = self.__dict__.get("_end")
        if end is not None and not end.ended:
            end.end(None, True)


class AsyncStreamWrapper(Generic[T]):
    """Async iterator over an async stream that records each chunk.

    Attributes and methods it does not define are those of the stream.
    """

    def __init__(self, stream: Any, on_chunk: OnChunk, end: StreamEnd) -> None:
        self._stream = stream
        self._iterator: AsyncIterator[T] | None = None
        self._on_chunk = _guarded(on_chunk)
        self._end = end

    @property
    def ended(self) -> bool:
        """Whether the call already ended."""
        return self._end.ended

    def __aiter__(self) -> AsyncStreamWrapper[T]:
        return self

    async def __anext__(self) -> T:
        if self._iterator is None:
            self._iterator = aiter(self._stream)
        return await self._advance(anext, self._iterator)

    async def _advance(self, step: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await the next chunk from ``step(*args)``, recording it or the end.

        An error that leaves an async generator open was raised before it
        ran, so it does not end the call.
        """
        try:
            chunk = await step(*args)
        except StopAsyncIteration:
            self._end.end(None, False)
            raise
        except BaseException as error:
            source = self._stream if self._iterator is None else self._iterator
            if not (inspect.isasyncgen(source) and source.ag_frame is not None):
                self._end.end(error, False)
            raise
        self._on_chunk(chunk)
        return chunk

    async def aclose(self) -> None:
        """Close the stream; the call ends as ``cancelled`` if unfinished."""
        try:
            await _close_async(self._stream)
        finally:
            self._end.end(None, True)

    async def close(self) -> None:
        """Close the stream, as ``aclose``; the name the ``openai`` SDK uses."""
        await self.aclose()

    async def __aenter__(self) -> AsyncStreamWrapper[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._stream, name)
        if name in _ASYNC_STEPS and inspect.isasyncgen(self._stream):
            # An async generator's asend() and athrow() advance it as
            # anext() does.
            return functools.partial(self._advance, value)
        return value

    def __del__(self) -> None:
        end = self.__dict__.get("_end")
        if end is not None and not end.ended:
            end.end(None, True)


async def _close_async(stream: Any) -> None:
    for name in ("aclose", "close"):
        close = getattr(stream, name, None)
        if close is None:
            continue
        result = close()
        if hasattr(result, "__await__"):
            await result
        return


def _guarded(on_chunk: OnChunk) -> OnChunk:
    """Wrap the chunk callback so an llmobs failure never breaks the stream."""

    def record(chunk: Any) -> None:
        try:
            on_chunk(chunk)
        except Exception:  # noqa: BLE001 - the consumer must get its chunks
            _warning.warn("chunk", "recording a stream chunk failed", exc_info=True)

    return record


def wrap_stream(
    stream: Any, on_chunk: OnChunk, end: StreamEnd
) -> SyncStreamWrapper[Any] | AsyncStreamWrapper[Any]:
    """Wrap ``stream`` in the sync or async wrapper, by what it supports.

    Raises:
        TypeError: If ``stream`` is neither iterable nor async iterable.
    """
    if hasattr(stream, "__aiter__"):
        return AsyncStreamWrapper(stream, on_chunk, end)
    if hasattr(stream, "__iter__"):
        return SyncStreamWrapper(stream, on_chunk, end)
    raise TypeError(
        f"wrap_stream() needs an iterator or async iterator of chunks, got "
        f"{type(stream).__name__}"
    )
