"""The four-stage answer pipeline shared by the gateway's features.

Every request runs retrieve_context, build_prompt, call_llm and postprocess,
each inside its llmobs stage scope, so each request gets one call event and
four stage spans under its request span.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from opentelemetry import propagate
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

import llmobs_core as llmobs
from examples.fastapi_gateway._cache import AnswerCache
from examples.fastapi_gateway._knowledge import KnowledgeBase
from examples.fastapi_gateway._prompts import ModelAnswer, PromptTemplate, finish_answer
from examples.fastapi_gateway._sse import (
    SSE_MEDIA_TYPE,
    EagerStreamingResponse,
    sse_event,
)

logger = logging.getLogger("examples.fastapi_gateway")

PROVIDER = "openai"

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


@dataclass(frozen=True, slots=True)
class Feature:
    """Settings of one gateway feature.

    Attributes:
        name: Feature name, as in the events and metrics.
        model: Model requested from the provider.
        template: Prompt template.
        knowledge: Knowledge base searched for context.
        max_output_tokens: Limit on the model's answer, in tokens.
        max_answer_chars: Limit on the answer sent to the client, in characters.
        cache: Answer cache, or None to always call the provider.
        footer: Paragraph appended to every answer, if any.
    """

    name: str
    model: str
    template: PromptTemplate
    knowledge: KnowledgeBase
    max_output_tokens: int
    max_answer_chars: int
    cache: AnswerCache | None = None
    footer: str | None = None


@dataclass(frozen=True, slots=True)
class Prompt:
    """The prompt built for one request, with the ids of the passages in it."""

    question: str
    messages: list[ChatCompletionMessageParam]
    sources: tuple[str, ...]


@dataclass(slots=True)
class StreamedReply:
    """Text of a streamed reply, collected chunk by chunk."""

    pieces: list[str] = field(default_factory=list)
    truncated: bool = False

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Store the chunk's text and return it ("" for chunks without text)."""
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason == "length":
            self.truncated = True
        text = choice.delta.content or ""
        if text:
            self.pieces.append(text)
        return text

    def answer(self) -> ModelAnswer:
        return ModelAnswer("".join(self.pieces), self.truncated)


class Gateway:
    """Serve feature requests with one provider client.

    Args:
        client: The provider client, shared by all requests.
        features: The features served, by name.
    """

    def __init__(
        self, client: openai.AsyncOpenAI, features: dict[str, Feature]
    ) -> None:
        self.client = client
        self.features = features

    async def respond(
        self, feature_name: str, body: ChatRequest, behavior: str | None
    ) -> Response:
        """Run the pipeline for one request and build its response.

        The response is JSON, or server-sent events for a streaming request.

        Raises:
            openai.APIError: The provider call failed before any answer text
                was received. The app's exception handlers map it to a status.
                For a streaming request the streaming response raises it
                before it sends the status line.
            httpx.HTTPError: The provider's stream broke before any text.
        """
        feature = self.features[feature_name]
        prompt = await self._prepare(feature, body.message)
        cached = feature.cache.get(body.message) if feature.cache else None
        if not body.stream:
            answer = await self._complete(feature, prompt, cached, behavior)
            cache_hit = cached is not None
            return JSONResponse(
                self._answer_body(feature, prompt, answer, cached=cache_hit)
            )
        if cached is not None:
            events = self._stream_cached(feature, prompt, cached)
        else:
            events = self._stream_provider(feature, prompt, behavior)
        return EagerStreamingResponse(events, media_type=SSE_MEDIA_TYPE)

    async def _prepare(self, feature: Feature, question: str) -> Prompt:
        knowledge = feature.knowledge
        async with llmobs.retrieve_context(knowledge_base=knowledge.name):
            passages = await knowledge.search(question)
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

    async def _complete(
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
            completion = await self.client.chat.completions.create(
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

    async def _stream_cached(
        self, feature: Feature, prompt: Prompt, cached: ModelAnswer
    ) -> AsyncIterator[bytes]:
        with self._call_scope(feature, prompt, streaming=True) as call:
            call.mark_cache_hit()
            call.mark_first_token()
        yield sse_event({"delta": cached.text})
        yield sse_event(self._answer_body(feature, prompt, cached, cached=True), "done")

    async def _stream_provider(
        self, feature: Feature, prompt: Prompt, behavior: str | None
    ) -> AsyncIterator[bytes]:
        # The call_llm scope is opened here, not in the endpoint, because
        # Starlette may iterate this generator in another task, with its own
        # copy of the context, and a scope must end in the context it began in.
        reply = StreamedReply()
        try:
            with self._call_scope(feature, prompt, streaming=True) as call:
                stream = await self._open_stream(feature, prompt, behavior)
                async with stream:
                    async for chunk in stream:
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

    async def _open_stream(
        self, feature: Feature, prompt: Prompt, behavior: str | None
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        return await self.client.chat.completions.create(
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
