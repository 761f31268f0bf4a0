"""Signed debug tokens: full content capture that clients cannot switch on.

A token is ``v1.<expiry>.<nonce>.<signature>``: the expiry in Unix seconds, a
random nonce, and the hex HMAC-SHA-256 of ``v1.<expiry>.<nonce>`` with the
server's hash key. Operators mint one with ``sign_debug_token`` and send it
in the debug header. The server accepts a token only if its signature
matches, it has not expired, its lifetime is within the policy's maximum,
and its nonce has not been seen before in this process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict

__all__ = ["DebugTokenVerifier", "sign_debug_token"]

_VERSION = "v1"
_MAX_TOKEN_LENGTH = 200
# Nonces are remembered until their token expires, up to this many; past it
# the oldest are dropped. A dropped nonce could be replayed until it expires.
_MAX_REMEMBERED_NONCES = 100_000


def sign_debug_token(
    key: str | bytes, *, ttl_seconds: int = 600, now: float | None = None
) -> str:
    """Mint a debug token that turns on full content capture for a request.

    Args:
        key: The server's hash key (``LLMOBS_HASH_KEY``).
        ttl_seconds: Seconds until the token expires.
        now: The current Unix time, for tests.

    Returns:
        The token, to send in the policy's debug header (``X-LLMobs-Debug``).
    """
    key_bytes = key.encode() if isinstance(key, str) else key
    expiry = int((time.time() if now is None else now) + ttl_seconds)
    nonce = secrets.token_hex(8)
    payload = f"{_VERSION}.{expiry}.{nonce}"

    return f"{payload}.{_signature(key_bytes, payload)}"


class DebugTokenVerifier:
    """Check debug tokens against one key, remembering nonces already used.

    Args:
        key: The server's hash key.
        max_age: Longest lifetime in seconds accepted for a token.
    """

    def __init__(self, key: bytes, max_age: int) -> None:
        self._key = key
        self._max_age = max_age
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, token: str, now: float | None = None) -> str | None:
        """Return None for a valid, unused token, else why it was rejected.

        The reasons are ``malformed``, ``bad_signature``, ``expired``,
        ``too_long_lived`` and ``replayed``. A valid token is used up.
        """
        now = time.time() if now is None else now
        parts = token.split(".") if len(token) <= _MAX_TOKEN_LENGTH else []
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            return "malformed"
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], _signature(self._key, payload)):
            return "bad_signature"
        expiry = int(parts[1])
        if expiry <= now:
            return "expired"
        if expiry - now > self._max_age:
            return "too_long_lived"

        return self._use_nonce(parts[2], expiry, now)

    def _use_nonce(self, nonce: str, expiry: int, now: float) -> str | None:
        with self._lock:
            if nonce in self._seen:
                return "replayed"
            self._seen[nonce] = expiry
            self._forget_expired(now)
        return None

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            oldest_nonce, oldest_expiry = next(iter(self._seen.items()))
            if oldest_expiry > now and len(self._seen) <= _MAX_REMEMBERED_NONCES:
                return
            del self._seen[oldest_nonce]


def _signature(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
