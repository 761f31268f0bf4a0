"""Run a generator's steps in their own context, apart from the consumer's.

A stage opened inside a generator (``with call_llm(...)`` around ``yield``)
makes its span current when it starts. Without isolation, the span stays
current in the consumer's context between chunks, so the consumer's own
spans and events would be attributed to it, and closing the generator from
another task fails to detach it. ``isolate_generator`` runs every step in a
context of the generator's own, copied when it is wrapped, so the stage is
current only while the generator runs.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any, TypeVar, overload

__all__ = ["isolate_generator"]

T = TypeVar("T")


class IsolatedGenerator(Iterator[T]):
    """Iterator whose every step runs in the wrapped generator's context."""

    def __init__(self, generator: Generator[T, Any, Any]) -> None:
        self._generator = generator
        self._context = contextvars.copy_context()

    def __iter__(self) -> IsolatedGenerator[T]:
        return self

    def __next__(self) -> T:
        return self._context.run(next, self._generator)

    def send(self, value: Any) -> T:
        """Resume the generator with ``value``, in its own context."""
        return self._context.run(self._generator.send, value)

    def close(self) -> None:
        """Close the generator in its own context, ending its open stages."""
        self._context.run(self._generator.close)


class IsolatedAsyncGenerator(AsyncIterator[T]):
    """Async iterator whose every step runs in the generator's context.

    Each step runs as a task created with that context (``asyncio`` only),
    so cancelling the consumer cancels the step too.
    """

    def __init__(self, generator: AsyncGenerator[T, Any]) -> None:
        self._generator = generator
        self._context = contextvars.copy_context()

    def __aiter__(self) -> IsolatedAsyncGenerator[T]:
        return self

    async def __anext__(self) -> T:
        step = self._generator.__anext__()
        return await asyncio.create_task(step, context=self._context)

    async def aclose(self) -> None:
        """Close the generator in its own context, ending its open stages."""
        closing = self._generator.aclose()
        await asyncio.create_task(closing, context=self._context)


@overload
def isolate_generator(
    generator: AsyncGenerator[T, Any],
) -> IsolatedAsyncGenerator[T]: ...


@overload
def isolate_generator(generator: Generator[T, Any, Any]) -> IsolatedGenerator[T]: ...


def isolate_generator(generator: Any) -> Any:
    """Wrap a generator so the stages it opens stay inside it.

    Use it on a streaming response's generator::

        return StreamingResponse(llmobs.isolate_generator(events()))

    The generator's context is copied when it is wrapped, so call this in
    the request (the endpoint), not later.

    Raises:
        TypeError: If ``generator`` is not a generator or async generator.
    """
    if isinstance(generator, AsyncGenerator):
        return IsolatedAsyncGenerator(generator)
    if isinstance(generator, Generator):
        return IsolatedGenerator(generator)
    raise TypeError(
        f"isolate_generator() needs a generator or async generator object, got "
        f"{type(generator).__name__}; call the generator function first"
    )
