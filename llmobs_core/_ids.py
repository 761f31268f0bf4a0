"""Generate and validate request ids and W3C trace and span ids."""

from __future__ import annotations

import os
import random
import re

MAX_REQUEST_ID_LENGTH = 128

# 32-hex ids (nginx $request_id), UUIDs of any version and case, and other
# opaque ids made of URL-safe characters pass unchanged.
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID_LENGTH}}}")

# Ids only need to be unique, not secret, so the fast non-cryptographic
# generator is enough; the OpenTelemetry SDK's RandomIdGenerator does the same.
# Python reseeds only the module's own generator in a forked child, so this
# one is reseeded here: otherwise gunicorn workers forked from one parent
# would make the same trace and span ids.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def is_valid_request_id(value: str) -> bool:
    """Return whether ``value`` is acceptable as a request id as received."""
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """Return a fresh request id: 128 random bits as 32 lower-case hex digits.

    The bits come from ``os.urandom``, read for 256 ids at a time. Each read
    releases the interpreter lock and hands it to any thread waiting for it,
    such as the span exporter's. Reading on every request would cost each
    request a switch between threads.
    """
    try:
        return _request_ids.pop()
    except IndexError:
        block = os.urandom(16 * _REQUEST_ID_BATCH).hex()
        _request_ids.extend(block[i : i + 32] for i in range(0, len(block), 32))
        return _request_ids.pop()


_REQUEST_ID_BATCH = 256
# list.pop() is atomic, so threads never get the same id. A forked child
# starts empty, or it would hand out the ids its parent hands out too.
_request_ids: list[str] = []
os.register_at_fork(after_in_child=_request_ids.clear)

fork_generation = 0
"""How many forks led to this process. Calls, stages and requests keep the
value they started with: a forked child's copies of its parent's unfinished
ones must end nothing and write nothing, since the parent ends them."""


def _count_fork() -> None:
    global fork_generation
    fork_generation += 1


os.register_at_fork(after_in_child=_count_fork)


def new_trace_id() -> int:
    """Return a random, valid (non-zero) 128-bit W3C trace id."""
    return _random.getrandbits(128) or 1


def new_span_id() -> int:
    """Return a random, valid (non-zero) 64-bit W3C span id."""
    return _random.getrandbits(64) or 1


def format_trace_id(trace_id: int) -> str:
    """Format a trace id as 32 lower-case hex digits."""
    return f"{trace_id:032x}"


def format_span_id(span_id: int) -> str:
    """Format a span id as 16 lower-case hex digits."""
    return f"{span_id:016x}"
