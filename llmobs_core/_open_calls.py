"""Calls whose wrapped streams are still open, ended at exit or by ``shutdown()``.

Such calls end when their stream does. A stream still open when the
interpreter exits (in a suspended generator, a daemon thread) would end during
the interpreter's teardown, where pydantic can serialize no event, so an exit
hook ends these calls first, as cancelled.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Protocol

from llmobs_core.emitters import flush_all

__all__ = ["move_exit_hook_last", "shutdown", "track", "untrack"]


class OpenCall(Protocol):
    """A call that its wrapped stream ends."""

    def end_at_exit(self) -> None:
        """End the call as cancelled, whatever its stream is doing."""


_calls: weakref.WeakSet[OpenCall] = weakref.WeakSet()
# A WeakSet cannot be copied while another thread adds to it.
_calls_lock = threading.Lock()
_hook_lock = threading.Lock()
_hook_registered = False


def track(call: OpenCall) -> None:
    """Keep ``call`` until ``untrack``, so the exit hook can end it."""
    if not _hook_registered:
        _register_exit_hook()
    with _calls_lock:
        _calls.add(call)


def untrack(call: OpenCall) -> None:
    """Forget ``call``: its event has been sent."""
    with _calls_lock:
        _calls.discard(call)


def end_open_calls() -> None:
    """End every tracked call, as cancelled."""
    # NOTE: only the calls end here. A stage still open around one in a
    # suspended generator ends during the interpreter's teardown, after the
    # tracer provider has shut down, so its span is lost.
    with _calls_lock:
        calls = list(_calls)
    for call in calls:
        call.end_at_exit()


def shutdown(timeout: float = 5.0) -> bool:
    """End the calls whose streams are still open, then write queued events.

    The ``atexit`` hooks do the same. Call it where a process stops without
    running them: a server's shutdown hook (uvicorn re-raises SIGTERM after
    its shutdown), the end of a ``multiprocessing`` child's work. Not from a
    signal handler: the handler can interrupt code that holds the locks this
    takes. The open calls end as ``cancelled``; calls made afterwards work
    as before.

    Returns:
        True if every event writer emptied its queue within ``timeout``
        seconds.
    """
    end_open_calls()
    return flush_all(timeout)


def _register_exit_hook() -> None:
    # Registered at the first wrapped stream, after the event writers and
    # the tracer provider registered theirs. Exit hooks run last-registered
    # first, so these events and spans go out before those shut down.
    global _hook_registered
    with _hook_lock:
        if not _hook_registered:
            atexit.register(end_open_calls)
            _hook_registered = True


def move_exit_hook_last() -> None:
    """Register the exit hook again, to run before hooks registered so far.

    ``configure()`` calls this: a tracer provider made after the first
    wrapped stream registered its shutdown after the hook, and would shut
    down before the hook ends the open calls, losing their spans.
    """
    with _hook_lock:
        if _hook_registered:
            atexit.unregister(end_open_calls)
            atexit.register(end_open_calls)
