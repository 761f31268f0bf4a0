"""Wrappers that observe a provider stream's chunks and end the call once."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

from llmobs_core._ratelimit import RateLimitedWarning

logger = logging.getLogger("llmobs_core.stages")
_warning = RateLimitedWarning(logger)

T = TypeVar("T")

OnChunk = Callable[[Any], None]
OnEnd = Callable[[BaseException | None, bool], None]
"""Called once with the error that ended the stream (or None) and whether
the stream stopped before its end."""


# The ends of wrapped streams not ended yet. At interpreter exit they are
# ended as cancelled, while events can still be built and written: a stream
# collected later, during the interpreter's teardown, could not write one.
_unended: weakref.WeakSet[StreamEnd] = weakref.WeakSet()
_exit_hook_registered = False
_exit_hook_lock = threading.Lock()


def end_unended_streams() -> None:
    """End every wrapped stream that has not ended, as cancelled."""
    for end in list(_unended):
        end.end(None, True)


def _register_exit_hook() -> None:
    # Registered at the first wrapped stream, after the event writers have
    # registered theirs. Exit hooks run last-registered first, so the
    # streams' events are queued before the writers flush.
    global _exit_hook_registered
    with _exit_hook_lock:
        if not _exit_hook_registered:
            atexit.register(end_unended_streams)
            _exit_hook_registered = True


def _forget_unended_streams() -> None:
    """In a forked child, mark the copies of the parent's streams as ended.

    The parent ends those calls, so the child's copies must write nothing,
    whether consumed, collected or still open at exit. The locks are not
    taken: the child has one thread, and a lock copied while another thread
    of the parent held it would never be released.
    """
    for end in list(_unended):
        end._on_end = None
        end.ended = True
    _unended.clear()


os.register_at_fork(after_in_child=_forget_unended_streams)


class StreamEnd:
    """The once-only end of a wrapped stream.

    The call keeps this object, not the wrapper, so that a wrapper dropped by
    its consumer is collected at once and its ``__del__`` ends the call.
    """

    __slots__ = ("__weakref__", "_lock", "_on_end", "ended")

    def __init__(self, on_end: OnEnd) -> None:
        self._on_end: OnEnd | None = on_end
        self._lock = threading.Lock()
        self.ended = False
        if not _exit_hook_registered:
            _register_exit_hook()
        _unended.add(self)

    def end(self, error: BaseException | None, cancelled: bool) -> None:
        """Run the end callback, the first time only.

        ``ended`` turns True only once the callback has returned. For a
        ``call_llm`` block that exits meanwhile on another thread, the stream
        is then still pending, so the block leaves the call to this end and
        its error instead of ending it as a success.
        """
        with self._lock:
            # The callback is a method of the call that keeps this object:
            # dropping it breaks that reference cycle, so the call and its
            # span are freed without waiting for the garbage collector.
            on_end, self._on_end = self._on_end, None
        if on_end is None:
            return
        _unended.discard(self)
        try:
            on_end(error, cancelled)
        except Exception:
            logger.warning("ending an LLM call stream failed", exc_info=True)
        finally:
            self.ended = True


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
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._end.end(None, False)
            raise
        except BaseException as error:
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
        return getattr(self._stream, name)

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
        try:
            chunk = await anext(self._iterator)
        except StopAsyncIteration:
            self._end.end(None, False)
            raise
        except BaseException as error:
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
        return getattr(self._stream, name)

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
