"""The user content one call may carry, as its privacy policy allows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmobs_core.privacy import CaptureMode, PrivacyPolicy
from llmobs_core.redaction import Redactor

# Text kept per call for capture; longer inputs and outputs are cut here.
MAX_CAPTURE_CHARS = 100_000

CapturedFields = tuple[str, str | None, str | None, str | None, str | None]
_NOTHING_CAPTURED: CapturedFields = (CaptureMode.NONE.value, None, None, None, None)


class ContentCapture:
    """Collect a call's input and output text, if its capture mode allows.

    In mode ``NONE`` nothing is kept at all. The input is the last user
    message of a message list (the whole list in ``FULL`` mode), or the
    prompt text.
    """

    __slots__ = ("_input", "_output", "_output_chars", "_policy", "_redactor", "mode")

    def __init__(
        self,
        mode: CaptureMode,
        policy: PrivacyPolicy | None,
        redactor: Redactor | None,
        prompt: Any,
    ) -> None:
        self.mode = mode
        self._policy = policy
        self._redactor = redactor
        self._input: str | None = None
        self._output: list[str] = []
        self._output_chars = 0
        if mode is not CaptureMode.NONE and prompt is not None:
            whole = mode is CaptureMode.FULL
            self._input = render_prompt(prompt, whole=whole)[:MAX_CAPTURE_CHARS]

    @property
    def active(self) -> bool:
        """Whether any content is kept."""
        return self.mode is not CaptureMode.NONE

    def add_output(self, text: str) -> None:
        """Append streamed output text, up to the capture limit."""
        room = MAX_CAPTURE_CHARS - self._output_chars
        if self.mode is CaptureMode.NONE or room <= 0 or not text:
            return
        self._output.append(text[:room])
        self._output_chars += min(len(text), room)

    def set_output(self, text: str) -> None:
        """Replace the output text with a whole response's text."""
        if self.mode is CaptureMode.NONE:
            return
        self._output = []
        self._output_chars = 0
        self.add_output(text)

    def fields(self) -> CapturedFields:
        """Return the event's capture fields.

        They are ``capture_mode``, ``input_snippet``, ``output_snippet``,
        ``input_content`` and ``output_content``, in that order.
        """
        if self.mode is CaptureMode.NONE:
            return _NOTHING_CAPTURED
        output = "".join(self._output) if self._output else None
        if self.mode is CaptureMode.FULL:
            return (self.mode.value, None, None, self._input, output)
        return (
            self.mode.value,
            self._snippet(self._input),
            self._snippet(output),
            None,
            None,
        )

    def _snippet(self, text: str | None) -> str | None:
        # Redact the whole text before cutting, so a cut cannot split a PII
        # item into a part the redactor no longer recognizes.
        if text is None:
            return None
        assert self._redactor is not None  # set in every mode but NONE
        assert self._policy is not None
        return self._redactor.redact(text)[: self._policy.snippet_chars]


# Mode NONE keeps no state, so every call without capture shares one.
NO_CAPTURE = ContentCapture(CaptureMode.NONE, None, None, None)


def content_capture(
    mode: CaptureMode, policy: PrivacyPolicy, redactor: Redactor, prompt: Any
) -> ContentCapture:
    """Return the content capture of one call: ``NO_CAPTURE`` in mode ``NONE``."""
    if mode is CaptureMode.NONE:
        return NO_CAPTURE
    return ContentCapture(mode, policy, redactor, prompt)


def render_prompt(prompt: Any, *, whole: bool) -> str:
    """Return a prompt as text: the string, or the messages' text.

    Args:
        prompt: A string, a message list (OpenAI or Anthropic style) or a
            mapping with ``messages``.
        whole: Render every message as ``role: text`` lines; otherwise only
            the last user message's text.
    """
    if isinstance(prompt, str):
        return prompt
    messages = prompt.get("messages", []) if isinstance(prompt, Mapping) else prompt
    if not isinstance(messages, list | tuple):
        return ""
    if whole:
        lines = (f"{_role(m)}: {_message_text(m)}" for m in messages)
        return "\n".join(lines)
    for message in reversed(messages):
        if _role(message) == "user":
            return _message_text(message)
    return ""


def _role(message: Any) -> str:
    role = message.get("role") if isinstance(message, Mapping) else None
    return role if isinstance(role, str) else ""


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, Mapping) else message
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts = (part.get("text") for part in content if isinstance(part, Mapping))
        return " ".join(part for part in parts if isinstance(part, str))
    return ""
