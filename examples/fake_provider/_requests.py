"""Parsing and validation of API requests, and the behaviour selection."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from examples.fake_provider._config import Behavior
from examples.fake_provider._responses import error_response

BEHAVIOR_HEADER = "x-fake-behavior"
_BEHAVIOR_VALUES = tuple(behavior.value for behavior in Behavior)
_JSON_TYPE_NAMES = {bool: "a boolean", dict: "an object", str: "a string"}

_T = TypeVar("_T")


class InvalidRequestError(Exception):
    """Request that the provider rejects with a 400 response."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def to_response(self) -> JSONResponse:
        """Build the 400 response with the OpenAI error body."""
        return error_response(400, str(self), "invalid_request_error", param=self.param)


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """Fields of a Chat Completions request that the provider uses.

    Attributes:
        model: Model name as requested.
        messages: Chat messages as received.
        stream: Whether the response is a server-sent event stream.
        include_usage: Whether a stream ends with a usage chunk.
        max_tokens: Maximum number of completion tokens, or None for no limit.
    """

    model: str
    messages: list[Any]
    stream: bool
    include_usage: bool
    max_tokens: int | None


async def read_json_body(request: Request) -> Any:
    """Read and parse the request body, or return None if it is not valid JSON."""
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a parsed request body and extract the fields the provider uses.

    Raises:
        InvalidRequestError: The body is not a JSON object, or a field is missing
            or has the wrong type. The message names the field.
    """
    model = require_model(body)
    messages = validate_messages(body.get("messages"))
    stream = optional_field(body, "stream", bool, default=False)
    stream_options = optional_field(body, "stream_options", dict, default={})
    include_usage = optional_field(
        stream_options, "include_usage", bool, default=False, prefix="stream_options."
    )
    max_tokens = _max_tokens(body)
    return ChatRequest(model, messages, stream, include_usage, max_tokens)


def select_behavior(headers: Mapping[str, str], model: str) -> Behavior | None:
    """Return the behaviour selected by the header or the model name, if any.

    The ``x-fake-behavior`` header takes precedence. Without it, a model name
    ending in ``:<behavior>`` selects that behaviour, and other model names,
    such as fine-tuned ones with ``:`` separated parts, select none.

    Raises:
        InvalidRequestError: The header value is not a behaviour name.
    """
    header = headers.get(BEHAVIOR_HEADER)
    if header is not None:
        try:
            return Behavior(header.strip().lower())
        except ValueError:
            message = (
                f"Invalid {BEHAVIOR_HEADER} header: {header!r}. "
                f"Expected one of: {', '.join(_BEHAVIOR_VALUES)}."
            )
            raise InvalidRequestError(message) from None
    _, separator, suffix = model.rpartition(":")
    if separator and suffix in _BEHAVIOR_VALUES:
        return Behavior(suffix)
    return None


def require_model(body: Any) -> str:
    """Return the ``model`` of a parsed request body.

    Raises:
        InvalidRequestError: The body is not a JSON object, or its ``model`` is
            missing or not a non-empty string.
    """
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError(
            "Missing or invalid 'model': expected a string.", "model"
        )
    return model


def validate_messages(messages: Any) -> list[Any]:
    """Return ``messages`` if it is a non-empty array of objects with a ``role``.

    Raises:
        InvalidRequestError: ``messages`` is missing, empty or not an array, or an
            entry is not an object with a string ``role``.
    """
    if not isinstance(messages, list) or not messages:
        message = "Missing or invalid 'messages': expected a non-empty array."
        raise InvalidRequestError(message, "messages")
    for index, entry in enumerate(messages):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("role"), str):
            param = f"messages[{index}]"
            message = f"Invalid '{param}': expected an object with a 'role'."
            raise InvalidRequestError(message, param)
    return messages


def optional_field(
    container: Mapping[str, Any],
    name: str,
    expected_type: type[_T],
    *,
    default: _T,
    prefix: str = "",
) -> _T:
    """Return the field ``name`` of ``container``, or ``default`` if it is absent.

    A JSON null counts as absent. ``prefix`` is prepended to the field name in
    the error message and ``param``.

    Raises:
        InvalidRequestError: The field is not of ``expected_type``, which must be
            bool, dict or str.
    """
    value = container.get(name)
    if value is None:
        return default
    if not isinstance(value, expected_type):
        expected = _JSON_TYPE_NAMES[expected_type]
        message = f"Invalid '{prefix}{name}': expected {expected}, got {value!r}."
        raise InvalidRequestError(message, prefix + name)
    return value


def positive_int_field(body: Mapping[str, Any], name: str) -> int | None:
    """Return the field ``name`` of ``body`` if it is present and not null.

    Raises:
        InvalidRequestError: The field is not a positive integer.
    """
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        message = f"Invalid '{name}': expected a positive integer, got {value!r}."
        raise InvalidRequestError(message, name)
    return value


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    limits = []
    for name in ("max_completion_tokens", "max_tokens"):
        value = positive_int_field(body, name)
        if value is not None:
            limits.append(value)
    return min(limits, default=None)
