"""Prompt templates and the answer clean-up of the example gateway."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from openai.types.chat import ChatCompletionMessageParam

from examples.fastapi_gateway._knowledge import Passage

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A system prompt with a ``{context}`` slot, filled once per request.

    Attributes:
        id: Template id, logged as the event's ``prompt_template_id``.
        system: System prompt text containing ``{context}``.
        no_context: Text put in the slot when retrieval found nothing.
    """

    id: str
    system: str
    no_context: str = "No reference notes matched this question."

    def render(
        self, message: str, passages: Sequence[Passage]
    ) -> list[ChatCompletionMessageParam]:
        """Build the chat messages for one user message and its passages."""
        if passages:
            context = "\n".join(f"[{p.id}] {p.text}" for p in passages)
        else:
            context = self.no_context
        return [
            {"role": "system", "content": self.system.format(context=context)},
            {"role": "user", "content": message},
        ]


ASSISTANT_TEMPLATE = PromptTemplate(
    id="assistant.v3",
    system=(
        "You are the in-app assistant of a business reporting product. Answer in "
        "at most three sentences and cite note ids in brackets.\n"
        "Reference notes:\n{context}"
    ),
)

NUTRITION_TEMPLATE = PromptTemplate(
    id="nutrition.coach.v2",
    system=(
        "You are a friendly nutrition coach. Give practical, general advice in "
        "plain words, never a diagnosis.\n"
        "Reference notes:\n{context}"
    ),
)


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """A model's answer as the provider returned it, before post-processing.

    Attributes:
        text: The answer text.
        truncated: Whether the model stopped at its output token limit.
    """

    text: str
    truncated: bool


def finish_answer(answer: ModelAnswer, *, max_chars: int, footer: str | None) -> str:
    """Collapse whitespace, shorten to ``max_chars`` and close the last sentence.

    A truncated answer ends with an ellipsis, any other with punctuation.

    Args:
        answer: The model's answer.
        max_chars: Maximum length of the answer, before the footer.
        footer: Paragraph appended after the answer, if any.
    """
    text = _SPACE.sub(" ", answer.text).strip()
    truncated = answer.truncated
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
        truncated = True
    text = text[:1].upper() + text[1:]
    if truncated:
        text = text.rstrip(".,;:") + "…"
    elif text and text[-1] not in ".!?":
        text += "."
    if footer:
        text = f"{text}\n\n{footer}"
    return text
