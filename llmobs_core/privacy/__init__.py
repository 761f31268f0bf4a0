"""Privacy controls: keyed hashes, redaction, content capture and debug tokens.

By default no user text reaches an event: prompts and user ids are stored as
keyed hashes only. ``PrivacyPolicy`` allows redacted snippets for a sample of
traffic, and full content for allow-listed or signed debug traffic.
"""

from llmobs_core.privacy._hashing import Hasher, canonical_prompt
from llmobs_core.privacy.debug import DebugTokenVerifier, sign_debug_token
from llmobs_core.privacy.policy import CaptureMode, Environment, PrivacyPolicy

__all__ = [
    "CaptureMode",
    "DebugTokenVerifier",
    "Environment",
    "Hasher",
    "PrivacyPolicy",
    "canonical_prompt",
    "sign_debug_token",
]
