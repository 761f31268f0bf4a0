"""Privacy policy: the user content llmobs may capture, and its hash key."""

from __future__ import annotations

import enum
import logging
import math
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from llmobs_core.privacy._hashing import MIN_KEY_BYTES

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "ENVIRONMENT_ENV",
    "HASH_KEY_ENV",
    "CaptureMode",
    "Environment",
    "PrivacyPolicy",
]

logger = logging.getLogger(__name__)

HASH_KEY_ENV = "LLMOBS_HASH_KEY"
ENVIRONMENT_ENV = "LLMOBS_ENVIRONMENT"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# Values of the OpenTelemetry variable that ask for content. llmobs maps all
# of them to redacted snippets: full content is only ever for debug traffic.
_CAPTURE_ON = frozenset({"true", "span_only", "event_only", "span_and_event"})
_CAPTURE_OFF = frozenset({"", "false", "no_content"})


class CaptureMode(enum.StrEnum):
    """How much user content an event may carry."""

    NONE = "none"
    """Hashes only; the default."""
    SNIPPET = "snippet"
    """The first ``snippet_chars`` characters of input and output, redacted."""
    FULL = "full"
    """The whole input and output. Only for allowed debug traffic."""


class Environment(enum.StrEnum):
    """Deployment environment; decides how a missing hash key is treated."""

    PRODUCTION = "production"
    DEVELOPMENT = "development"


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    """What llmobs may record about user content.

    Args:
        capture: ``NONE`` or ``SNIPPET`` for ordinary traffic. None (the
            default) follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``:
            a value that asks for content gives ``SNIPPET`` for every trace
            unless ``sample_rate`` is set, anything else ``NONE``. ``FULL``
            is not allowed here; see ``debug_tenants``.
        snippet_chars: Characters of input and output kept in a snippet,
            counted after redaction.
        sample_rate: Fraction of traces, from 0 to 1, whose calls carry
            snippets when ``capture`` is ``SNIPPET``; None means 0, or 1 when
            the capture mode came from the environment variable. Sampling is
            decided by the trace id, so all calls of a request are captured
            together.
        debug_tenants: Tenants whose calls carry full content.
        debug_user_hashes: Hashed user ids (as in ``user_id_hash``) whose
            calls carry full content.
        allow_signed_debug: Whether a request may turn on full content with
            a debug header signed by ``sign_debug_token`` and the hash key.
        debug_header: Name of that header.
        debug_token_max_age: Longest lifetime in seconds accepted for a
            signed debug token.
        hash_key: Secret for hashing prompts and user ids and for signing
            debug tokens, at least 16 bytes. By default ``$LLMOBS_HASH_KEY``.
        environment: ``production`` refuses to start without a hash key;
            ``development`` uses a random per-process key with a WARNING. By
            default ``$LLMOBS_ENVIRONMENT``, else ``development``.
        redaction_patterns: Extra ``(label, regex)`` pairs for snippets.

    Raises:
        ValueError: For an out-of-range value, ``capture=FULL``, or no hash
            key in production.
    """

    capture: CaptureMode | None = None
    snippet_chars: int = 150
    sample_rate: float | None = None
    debug_tenants: frozenset[str] = field(default_factory=frozenset)
    debug_user_hashes: frozenset[str] = field(default_factory=frozenset)
    allow_signed_debug: bool = True
    debug_header: str = "x-llmobs-debug"
    debug_token_max_age: int = 3600
    hash_key: str | bytes | None = None
    environment: Environment | None = None
    redaction_patterns: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        from_environment = self.capture is None
        set_field(self, "capture", _resolve_capture(self.capture))
        if self.sample_rate is None:
            on_by_variable = from_environment and self.capture is CaptureMode.SNIPPET
            set_field(self, "sample_rate", 1.0 if on_by_variable else 0.0)
        set_field(self, "environment", _resolve_environment(self.environment))
        set_field(self, "debug_tenants", frozenset(_strings(self.debug_tenants)))
        set_field(
            self, "debug_user_hashes", frozenset(_strings(self.debug_user_hashes))
        )
        set_field(self, "redaction_patterns", tuple(self.redaction_patterns))
        if (
            isinstance(self.snippet_chars, bool)
            or not isinstance(self.snippet_chars, int)
            or self.snippet_chars < 1
        ):
            raise ValueError(
                f"snippet_chars={self.snippet_chars!r} must be a positive int"
            )
        rate = self.sample_rate
        if not isinstance(rate, int | float) or math.isnan(rate) or not 0 <= rate <= 1:
            raise ValueError(f"sample_rate={rate!r} must be a number from 0 to 1")
        if self.debug_token_max_age < 1:
            raise ValueError(
                f"debug_token_max_age={self.debug_token_max_age!r} must be at "
                "least 1 second"
            )

    def resolve_key(self) -> bytes:
        """Return the hash key: the policy's, ``$LLMOBS_HASH_KEY``, or random.

        Raises:
            ValueError: If no key is set in production, or it is too short.
        """
        key = (
            self.hash_key if self.hash_key is not None else os.environ.get(HASH_KEY_ENV)
        )
        if key:
            key_bytes = key.encode() if isinstance(key, str) else key
            if len(key_bytes) < MIN_KEY_BYTES:
                raise ValueError(
                    f"hash key must be at least {MIN_KEY_BYTES} bytes, got "
                    f"{len(key_bytes)}; generate one with: python -c 'import "
                    "secrets; print(secrets.token_hex(32))'"
                )
            return key_bytes
        if self.environment is Environment.PRODUCTION:
            raise ValueError(
                f"{HASH_KEY_ENV} is not set and the environment is production: "
                "set it to a secret of at least 16 bytes shared by every "
                "process, or pass PrivacyPolicy(hash_key=...)"
            )
        logger.warning(
            "%s is not set: prompts and user ids are hashed with a random "
            "per-process key, so the same prompt or user gets different hashes "
            "in different processes and restarts, and signed debug tokens do "
            "not work; set %s to a secret of at least 16 bytes",
            HASH_KEY_ENV,
            HASH_KEY_ENV,
        )
        return secrets.token_bytes(32)

    def is_debug_subject(self, tenant_id: str | None, user_id_hash: str | None) -> bool:
        """Return whether a tenant or hashed user is on the debug allow-lists."""
        return (tenant_id is not None and tenant_id in self.debug_tenants) or (
            user_id_hash is not None and user_id_hash in self.debug_user_hashes
        )

    def snippet_sampled(self, trace_id: int) -> bool:
        """Return whether calls of this trace carry snippets.

        Uses the low 56 bits of the trace id, as OpenTelemetry's
        ``TraceIdRatioBased`` sampler does, so services agree on a trace.
        """
        rate = self.sample_rate or 0.0
        if self.capture is not CaptureMode.SNIPPET or rate <= 0:
            return False
        return (trace_id & _LOW_56_BITS) < rate * (1 << 56)


_LOW_56_BITS = (1 << 56) - 1


def _resolve_capture(capture: CaptureMode | str | None) -> CaptureMode:
    if capture is None:
        value = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower()
        if value in _CAPTURE_ON:
            return CaptureMode.SNIPPET
        if value not in _CAPTURE_OFF:
            logger.warning(
                "ignoring %s=%r: expected true, false, NO_CONTENT, SPAN_ONLY, "
                "EVENT_ONLY or SPAN_AND_EVENT",
                CAPTURE_CONTENT_ENV,
                value,
            )
        return CaptureMode.NONE
    mode = CaptureMode(capture)
    if mode is CaptureMode.FULL:
        raise ValueError(
            "capture='full' is not allowed for all traffic; allow-list tenants "
            "or users with debug_tenants / debug_user_hashes, or use signed "
            "debug tokens"
        )
    return mode


def _resolve_environment(environment: Environment | str | None) -> Environment:
    value = environment or os.environ.get(ENVIRONMENT_ENV) or Environment.DEVELOPMENT
    try:
        return Environment(str(value).lower())
    except ValueError:
        raise ValueError(
            f"environment={value!r} must be 'production' or 'development' "
            f"(argument or ${ENVIRONMENT_ENV})"
        ) from None


def _strings(values: Iterable[str]) -> Iterable[str]:
    if isinstance(values, str):
        raise TypeError(
            f"expected a collection of strings, got the string {values!r}; "
            "wrap it in a list"
        )
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"allow-list entries must be str, got {value!r}")
        yield value
