"""Keyed hashes of prompts, templates and user ids.

All hashes are HMAC-SHA-256 with the policy's secret key, so that nobody
without the key can confirm a guessed prompt or user id from an event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MIN_KEY_BYTES", "Hasher", "canonical_prompt"]

MIN_KEY_BYTES = 16


def canonical_prompt(prompt: str | Sequence[Any] | Mapping[str, Any]) -> bytes:
    """Return the canonical UTF-8 form of a prompt for hashing.

    Text is NFC-normalized and every run of whitespace becomes one space,
    with none at the ends. A message list or mapping gets the same treatment
    in each string, and is serialized as JSON with sorted keys and no
    insignificant whitespace, so neither key order nor reformatting changes
    the result.

    Raises:
        TypeError: If the prompt is neither text nor JSON-serializable data.
    """
    if isinstance(prompt, str):
        return _normalize_text(prompt).encode()
    try:
        text = json.dumps(
            _normalize_strings(prompt),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"prompt must be a str or JSON-serializable messages, got "
            f"{type(prompt).__name__}: {error}"
        ) from None
    return text.encode()


def _normalize_text(text: str) -> str:
    # str.split() with no argument splits on the same Unicode whitespace as
    # the regex \s, and ASCII text is already in NFC.
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def _normalize_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _normalize_text(value)
    if isinstance(value, Mapping):
        return {key: _normalize_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize_strings(item) for item in value]
    return value


class Hasher:
    """Keyed hash (HMAC-SHA-256) of prompts, templates and user ids.

    Args:
        key: Secret key, at least 16 bytes. Every process whose events are
            compared must use the same key.

    Raises:
        ValueError: If the key is shorter than 16 bytes.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"hash key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}; "
                "generate one with: python -c 'import secrets; "
                "print(secrets.token_hex(32))'"
            )
        self._key = key

    def __call__(self, value: str) -> str:
        """Return the hex HMAC-SHA-256 of a string, such as a user id."""
        return self.digest(value.encode())

    def digest(self, data: bytes) -> str:
        """Return the hex HMAC-SHA-256 of raw bytes."""
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def prompt(self, prompt: str | Sequence[Any] | Mapping[str, Any]) -> str:
        """Return the hash of a prompt's canonical form.

        Raises:
            TypeError: As ``canonical_prompt``.
        """
        return self.digest(canonical_prompt(prompt))

    def template(self, template_id: str | None, template: str) -> str:
        """Return the hash of a template's id and canonical text together."""
        return self.digest(
            f"{template_id or ''}\n".encode() + canonical_prompt(template)
        )
