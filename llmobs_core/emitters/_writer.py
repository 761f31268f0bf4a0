"""Write events off the request path: a bounded queue and one thread."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from llmobs_core._ratelimit import RateLimitedWarning

logger = logging.getLogger("llmobs_core.emitters")
_warning = RateLimitedWarning(logger)

T = TypeVar("T")

_writers: weakref.WeakSet[BackgroundWriter[object]] = weakref.WeakSet()


class _FlushMark:
    """Queue entry that a flush waits for: set when the writer reaches it."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class BackgroundWriter(Generic[T]):
    """Hand items to ``write`` on a daemon thread, through a bounded queue.

    ``submit`` never blocks: when the queue is full the item is dropped and
    ``on_drop`` is called. The thread starts on the first item, and again in
    a forked child (a gunicorn worker), whose copy of the parent's thread
    does not exist.

    The queue is a ``deque``, whose ``append`` and ``popleft`` are atomic, so
    the request thread takes no lock per item. It wakes the writer only for
    the first item of a batch, when ``batch_items`` are waiting, and for a
    flush. The writer then waits up to ``max_delay`` seconds for more items
    before it writes them all, so under load it wakes once per batch, not
    once per event. Each wake-up is a switch between threads and a hand-over
    of the interpreter lock.

    Args:
        name: Name for the thread and for warnings.
        write: Called with each item on the writer thread; an exception is
            logged (rate-limited) and the writer goes on.
        max_items: Queue capacity. Threads submitting at the same instant
            can each pass the check, so the queue can exceed it by one item
            per such thread.
        on_drop: Called once for each dropped item, on the caller's thread.
        batch_items: Number of waiting items that wakes the writer at once.
        max_delay: Maximum time in seconds an item waits for others before
            the writer writes it.
    """

    def __init__(
        self,
        name: str,
        write: Callable[[T], None],
        *,
        max_items: int,
        on_drop: Callable[[], None] | None = None,
        batch_items: int = 256,
        max_delay: float = 0.05,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items={max_items!r} must be at least 1")
        if batch_items < 1:
            raise ValueError(f"batch_items={batch_items!r} must be at least 1")
        if max_delay < 0:
            raise ValueError(f"max_delay={max_delay!r} must not be negative")
        self.name = name
        self._write = write
        self._max_items = max_items
        self._batch_items = batch_items
        self._max_delay = max_delay
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._reset()
        _writers.add(self)  # type: ignore[arg-type]

    def _reset(self) -> None:
        self._items: deque[T | _FlushMark] = deque()
        # Set to wake the writer. The writer clears it before it looks at the
        # queue, so that no item added after that look waits unseen.
        self._wake = threading.Event()
        # True while the writer waits with nothing taken from the queue. Only
        # the writer sets and clears it.
        self._idle = True
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, item: T) -> None:
        """Queue ``item`` for writing, or drop it if the queue is full."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        items = self._items
        if len(items) >= self._max_items:
            if self._on_drop is not None:
                self._on_drop()
            _warning.warn(self.name, "%s queue is full; dropping events", self.name)
            return
        items.append(item)
        waiting = len(items)
        if (waiting == 1 or waiting >= self._batch_items) and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued item is written.

        Returns:
            True if the queue emptied within ``timeout`` seconds.
        """
        if self._pid != os.getpid():
            # A forked child: the parent's queued items are the parent's.
            return True
        if self._thread is None or (self._idle and not self._items):
            return not self._items
        mark = _FlushMark()
        self._items.append(mark)
        self._wake.set()
        return mark.done.wait(max(timeout, 0.0))

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"llmobs-{self.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        items = self._items
        wake = self._wake
        while True:
            wake.wait()
            self._idle = False
            wake.clear()
            if len(items) < self._batch_items and not _flush_waiting(items):
                # Let a batch gather, unless a flush or a full batch wakes
                # the writer first.
                wake.wait(self._max_delay)
                wake.clear()
            self._write_all(items)
            self._idle = True

    def _write_all(self, items: deque[T | _FlushMark]) -> None:
        while True:
            try:
                item = items.popleft()
            except IndexError:
                return
            if isinstance(item, _FlushMark):
                item.done.set()
                continue
            try:
                self._write(item)
            except Exception:  # noqa: BLE001 - the writer must keep running
                _warning.warn(
                    self.name, "%s failed to write an event", self.name, exc_info=True
                )


def _flush_waiting(items: deque[Any]) -> bool:
    """Return whether the last queued entry is a flush's mark."""
    try:
        return isinstance(items[-1], _FlushMark)
    except IndexError:
        return False


def flush_all(timeout: float = 5.0) -> bool:
    """Wait until every background writer has written what it queued.

    Call it before a process exits when the exit skips ``atexit``, for
    example in a server's shutdown hook.

    Returns:
        True if all writers emptied their queues within ``timeout`` seconds
        (shared by all writers).
    """
    deadline = time.monotonic() + timeout
    flushed = True
    for writer in list(_writers):
        remaining = max(deadline - time.monotonic(), 0.0)
        flushed = writer.flush(remaining) and flushed
    return flushed


atexit.register(flush_all)
