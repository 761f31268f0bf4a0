"""Read token usage from provider SDK responses, without importing any SDK."""

from __future__ import annotations

import logging
from typing import Any

from llmobs_core.providers._usage import Usage
from llmobs_core.providers.openai import read_openai_chat

__all__ = ["Usage", "extract_usage"]

logger = logging.getLogger(__name__)
_reported_shapes: set[str] = set()


def extract_usage(response: Any) -> Usage | None:
    """Return the token usage and model reported in a provider response.

    Args:
        response: An SDK response object or its plain-dict JSON form.

    Returns:
        The usage, or None for a shape no adapter recognizes. Unknown shapes
        are logged once per type at DEBUG and never raise.
    """
    usage = read_openai_chat(response)
    if usage is None:
        shape = type(response).__qualname__
        if shape not in _reported_shapes:
            _reported_shapes.add(shape)
            logger.debug("no usage adapter recognizes response type %s", shape)

    return usage
