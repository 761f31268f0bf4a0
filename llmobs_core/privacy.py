"""Hash prompts and user ids so that no raw user text reaches an event."""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["UserIdHasher", "canonical_prompt", "hash_prompt"]


def canonical_prompt(prompt: str | Sequence[Any] | Mapping[str, Any]) -> bytes:
    """Return the canonical UTF-8 form of a prompt for hashing.

    Text is NFC-normalized. A message list or mapping is serialized as JSON
    with sorted keys and no insignificant whitespace, so dict key order does
    not change the result.

    Raises:
        TypeError: If the prompt is neither text nor JSON-serializable data.
    """
    if isinstance(prompt, str):
        return unicodedata.normalize("NFC", prompt).encode()
    try:
        text = json.dumps(
            prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    except TypeError as error:
        raise TypeError(
            f"prompt must be a str or JSON-serializable messages, got "
            f"{type(prompt).__name__}: {error}"
        ) from None
    return unicodedata.normalize("NFC", text).encode()


def hash_prompt(prompt: str | Sequence[Any] | Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of the prompt's canonical form."""
    return hashlib.sha256(canonical_prompt(prompt)).hexdigest()


class UserIdHasher:
    """Keyed hash (HMAC-SHA-256) of end-user ids.

    Args:
        key: Secret key, at least 16 bytes. The same key must be used by all
            processes whose events are compared.

    Raises:
        ValueError: If the key is shorter than 16 bytes.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError(
                f"hash key must be at least 16 bytes, got {len(key)}; "
                "generate one with: python -c 'import secrets; "
                "print(secrets.token_hex(32))'"
            )
        self._key = key

    def __call__(self, user_id: str) -> str:
        """Return the hex HMAC-SHA-256 of ``user_id``."""
        return hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()
