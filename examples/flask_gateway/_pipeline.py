"""The four-stage answer pipeline of the Flask gateway, on the sync OpenAI client.

Every request runs retrieve_context, build_prompt, call_llm and postprocess,
each inside its llmobs stage scope, so each request gets one call event and
four stage spans under its request span. The prompts, knowledge bases and
answer cache are the FastAPI example's; only the request handling differs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from flask import Response, jsonify, stream_with_context
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from opentelemetry import propagate
from pydantic import BaseModel, ConfigDict, Field

import llmobs_core as llmobs
from examples.fastapi_gateway._cache import ResponseCache
from examples.fastapi_gateway._knowledge import KnowledgeBase, Passage
from examples.fastapi_gateway._pipeline import Feature, Prompt, StreamedReply
from examples.fastapi_gateway._prompts import ModelAnswer, PromptTemplate, finish_answer

logger = logging.getLogger("examples.flask_gateway")

PROVIDER = "openai"
SSE_MEDIA_TYPE = "text/event-stream"

# Test hook: the caller's value of this header is forwarded to the provider,
# so demos and tests can make the fake provider fail on purpose.
BEHAVIOR_HEADER = "x-fake-behavior"

PROVIDER_ERRORS = (openai.APIError, httpx.HTTPError)
"""Exceptions a provider call can raise. httpx errors are included because
some openai SDK versions (1.x among them) let transport errors escape while a
stream is read, instead of wrapping them in ``openai.APIConnectionError``."""


class ChatRequest(BaseModel):
    """Body of a feature request."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=4000)
    stream: bool = False


class SharedCache:
    """A ``ResponseCache`` that the request threads of one worker share.

    ``ResponseCache`` is not thread-safe, and gunicorn's gthread workers serve
    requests on several threads, so every access holds one lock.
    """

    def __init__(self, max_entries: int) -> None:
        self._cache = ResponseCache(max_entries)
        self._lock = threading.Lock()

    def get(self, question: str) -> ModelAnswer | None:
        """Return the cached answer to ``question``, or None."""
        with self._lock:
            return self._cache.get(question)

    def put(self, question: str, answer: ModelAnswer) -> None:
        """Store the answer to ``question``."""
        with self._lock:
            self._cache.put(question, answer)


class Gateway:
    """Serve feature requests with one provider client.

    Args:
        client: The provider client, shared by all request threads.
        features: The features served, by name.
        lookups: Executor that runs the knowledge-base searches. It must
            carry the request context into its threads, as
            ``llmobs_core.context.ContextThreadPoolExecutor`` does, or the
            retrieve_context spans lose their request.
    """

    def __init__(
        self, client: openai.OpenAI, features: dict[str, Feature], lookups: Executor
    ) -> None:
        self.client = client
        self.features = features
        self.lookups = lookups

    def close(self) -> None:
        """Close the provider client and stop the lookup threads."""
        self.client.close()
        self.lookups.shutdown(wait=True)

    def respond(
        self, feature_name: str, body: ChatRequest, behavior: str | None
    ) -> Response:
        """Run the pipeline for one request and build its response.

        The response is JSON, or server-sent events for a streaming request.

        Raises:
            openai.APIError: The provider call failed before any answer text
                was received. The app's error handlers map it to a status.
                For a streaming request it is raised here too, because the
                first event is produced before the response is returned.
            httpx.HTTPError: The provider's stream broke before any text.
        """
        feature = self.features[feature_name]
        prompt = self._prepare(feature, body.message)
        cached = feature.cache.get(body.message) if feature.cache else None
        if not body.stream:
            answer = self._complete(feature, prompt, cached, behavior)
            cache_hit = cached is not None
            return jsonify(self._answer_body(feature, prompt, answer, cached=cache_hit))
        if cached is not None:
            events = self._stream_cached(feature, prompt, cached)
        else:
            events = self._stream_provider(feature, prompt, behavior)
        return sse_response(events)

    def _prepare(self, feature: Feature, question: str) -> Prompt:
        # The pool caps how many searches a worker runs at once against the
        # store. The search runs there inside its own retrieve_context scope,
        # a child of the request span because the executor copies the context.
        passages = self.lookups.submit(_search, feature.knowledge, question).result()
        with llmobs.build_prompt(template=feature.template.id):
            messages = feature.template.render(question, passages)
        return Prompt(question, messages, tuple(p.id for p in passages))

    def _call_scope(
        self, feature: Feature, prompt: Prompt, *, streaming: bool = False
    ) -> llmobs.LLMCallScope:
        return llmobs.call_llm(
            model=feature.model,
            provider=PROVIDER,
            prompt_template_id=feature.template.id,
            prompt=prompt.messages,
            streaming=streaming,
        )

    def _complete(
        self,
        feature: Feature,
        prompt: Prompt,
        cached: ModelAnswer | None,
        behavior: str | None,
    ) -> ModelAnswer:
        with self._call_scope(feature, prompt) as call:
            if cached is not None:
                call.mark_cache_hit()
                return cached
            completion = self.client.chat.completions.create(
                model=feature.model,
                messages=prompt.messages,
                max_completion_tokens=feature.max_output_tokens,
                extra_headers=_provider_headers(behavior),
            )
            call.record(completion)
        choice = completion.choices[0]
        answer = ModelAnswer(
            choice.message.content or "", choice.finish_reason == "length"
        )
        self._remember(feature, prompt, answer)
        return answer

    def _stream_cached(
        self, feature: Feature, prompt: Prompt, cached: ModelAnswer
    ) -> Iterator[bytes]:
        with self._call_scope(feature, prompt, streaming=True) as call:
            call.mark_cache_hit()
            call.mark_first_token()
        yield sse_event({"delta": cached.text})
        yield sse_event(self._answer_body(feature, prompt, cached, cached=True), "done")

    def _stream_provider(
        self, feature: Feature, prompt: Prompt, behavior: str | None
    ) -> Iterator[bytes]:
        # The call_llm scope lives in the generator, so it spans the whole
        # stream. If the client goes away, the server closes the response and
        # GeneratorExit ends the scope here, with status "cancelled".
        reply = StreamedReply()
        try:
            with (
                self._call_scope(feature, prompt, streaming=True) as call,
                self._open_stream(feature, prompt, behavior) as stream,
            ):
                for chunk in stream:
                    call.record_chunk(chunk)
                    text = reply.add(chunk)
                    if text:
                        yield sse_event({"delta": text})
        except PROVIDER_ERRORS as error:
            if not reply.pieces:
                raise
            yield _stream_error_event(error, len(reply.pieces))
            return
        answer = reply.answer()
        self._remember(feature, prompt, answer)
        yield sse_event(
            self._answer_body(feature, prompt, answer, cached=False), "done"
        )

    def _open_stream(
        self, feature: Feature, prompt: Prompt, behavior: str | None
    ) -> openai.Stream[ChatCompletionChunk]:
        return self.client.chat.completions.create(
            model=feature.model,
            messages=prompt.messages,
            max_completion_tokens=feature.max_output_tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_provider_headers(behavior),
        )

    def _answer_body(
        self,
        feature: Feature,
        prompt: Prompt,
        answer: ModelAnswer,
        *,
        cached: bool,
    ) -> dict[str, Any]:
        with llmobs.postprocess():
            text = finish_answer(
                answer, max_chars=feature.max_answer_chars, footer=feature.footer
            )
        return {
            "answer": text,
            "model": feature.model,
            "sources": list(prompt.sources),
            "cached": cached,
        }

    def _remember(self, feature: Feature, prompt: Prompt, answer: ModelAnswer) -> None:
        if feature.cache is not None and answer.text:
            feature.cache.put(prompt.question, answer)


def _search(knowledge: KnowledgeBase, question: str) -> list[Passage]:
    # KnowledgeBase.search is a coroutine (the FastAPI example awaits it), so
    # each search runs on a new event loop in the pool thread.
    with llmobs.retrieve_context(knowledge_base=knowledge.name):
        return asyncio.run(knowledge.search(question))


def sse_event(data: Any, event: str | None = None) -> bytes:
    """Encode one server-sent event with a JSON ``data`` field."""
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def sse_response(events: Iterator[bytes]) -> Response:
    """Build a server-sent events response whose first event is already made.

    The first event is produced here, inside the view, so that an exception
    raised before it still reaches the app's error handlers, which can then
    choose the status. Later exceptions cannot change the status: the
    generator must report them as events. ``stream_with_context`` keeps the
    request context for the rest of the stream.
    """
    stream = stream_with_context(events)
    first = next(stream, None)
    return Response(_prepend(first, stream), mimetype=SSE_MEDIA_TYPE)


def _prepend(first: bytes | None, rest: Iterator[bytes]) -> Iterator[bytes]:
    # A generator, not itertools.chain, because the server's close() must
    # reach ``rest``: that is what ends the call_llm scope of a stream whose
    # client went away.
    try:
        if first is not None:
            yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()


def _provider_headers(behavior: str | None) -> dict[str, str]:
    """Build the extra provider request headers: trace context and behaviour.

    Call it inside the call_llm scope, so that ``traceparent`` names the
    call_llm span.
    """
    headers: dict[str, str] = {}
    propagate.inject(headers)
    if behavior is not None:
        headers[BEHAVIOR_HEADER] = behavior
    return headers


def _stream_error_event(error: BaseException, pieces_sent: int) -> bytes:
    context = llmobs.current_context()
    request_id = context.request_id if context is not None else None
    logger.warning(
        "provider stream failed after %d text chunks, request_id=%s: %r",
        pieces_sent,
        request_id,
        error,
    )
    body = {
        "type": "provider_error",
        "message": "The model provider's stream ended early, so the answer is "
        "incomplete.",
        "request_id": request_id,
    }
    return sse_event({"error": body}, "error")
