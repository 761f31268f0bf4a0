"""Write events off the request path: a bounded queue and one thread."""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from llmobs_core._ratelimit import RateLimitedWarning

logger = logging.getLogger("llmobs_core.emitters")
_warning = RateLimitedWarning(logger)

T = TypeVar("T")

_writers: weakref.WeakSet[BackgroundWriter[object]] = weakref.WeakSet()


class BackgroundWriter(Generic[T]):
    """Hand items to ``write`` on a daemon thread, through a bounded queue.

    ``submit`` never blocks: when the queue is full the item is dropped and
    ``on_drop`` is called. The thread starts on the first item, and again in
    a forked child (a gunicorn worker), whose copy of the parent's thread
    does not exist.

    Args:
        name: Name for the thread and for warnings.
        write: Called with each item on the writer thread; an exception is
            logged (rate-limited) and the writer goes on.
        max_items: Queue capacity.
        on_drop: Called once for each dropped item, on the caller's thread.
    """

    def __init__(
        self,
        name: str,
        write: Callable[[T], None],
        *,
        max_items: int,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items={max_items!r} must be at least 1")
        self.name = name
        self._write = write
        self._max_items = max_items
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._reset()
        _writers.add(self)  # type: ignore[arg-type]

    def _reset(self) -> None:
        self._queue: queue.Queue[T] = queue.Queue(self._max_items)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, item: T) -> None:
        """Queue ``item`` for writing, or drop it if the queue is full."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if self._on_drop is not None:
                self._on_drop()
            _warning.warn(self.name, "%s queue is full; dropping events", self.name)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued item is written.

        Returns:
            True if the queue emptied within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        pending = self._queue
        with pending.all_tasks_done:
            while pending.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                pending.all_tasks_done.wait(remaining)
        return True

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
        pending = self._queue
        while True:
            item = pending.get()
            try:
                self._write(item)
            except Exception:  # noqa: BLE001 - the writer must keep running
                _warning.warn(
                    self.name, "%s failed to write an event", self.name, exc_info=True
                )
            finally:
                pending.task_done()


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
