"""Server-sent events: event encoding and a response that starts on its first event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Send

SSE_MEDIA_TYPE = "text/event-stream"


def sse_event(data: Any, event: str | None = None) -> bytes:
    """Encode one server-sent event with a JSON ``data`` field."""
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class EagerStreamingResponse(StreamingResponse):
    """Streaming response that sends its status line only with the first event.

    An exception raised before the generator yields anything therefore reaches
    the app's exception handlers, which can still respond with an error status.
    Later exceptions cannot change the status: the generator must report them
    as events.

    The generator is closed in this task, also on cancellation, so that the
    context variables it set are reset in the context that set them.
    """

    async def stream_response(self, send: Send) -> None:
        """Send the events, starting the response after the first one."""
        iterator = aiter(self.body_iterator)
        try:
            first = await anext(iterator, None)
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            if first is not None:
                await self._send_body(send, first)
            async for chunk in iterator:
                await self._send_body(send, chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await _close(iterator)

    async def _send_body(self, send: Send, chunk: str | bytes | memoryview) -> None:
        body = chunk.encode(self.charset) if isinstance(chunk, str) else chunk
        await send({"type": "http.response.body", "body": body, "more_body": True})


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    # Shielded: after a client disconnect the task is being cancelled, and the
    # generator's clean-up (ending its call_llm scope) must still run.
    with anyio.CancelScope(shield=True):
        await aclose()
