"""Map an exception that ended an LLM call to a ``CallStatus``.

Provider SDK and HTTP client exceptions are matched by class name and module,
so no SDK is imported.
"""

from __future__ import annotations

import asyncio

from llmobs_core.schema import CallStatus

# Provider SDKs and the HTTP clients they are built on. Their exceptions are
# matched by class name, in order, against the exception's class hierarchy.
_LIBRARY_MODULES = ("openai", "anthropic", "httpx", "httpx2", "httpcore")
_CLASS_STATUS = (
    ("APITimeoutError", CallStatus.TIMEOUT),
    ("TimeoutException", CallStatus.TIMEOUT),
    ("RateLimitError", CallStatus.RATE_LIMITED),
    ("APIStatusError", CallStatus.PROVIDER_ERROR),
    ("APIConnectionError", CallStatus.PROVIDER_ERROR),
    ("APIError", CallStatus.PROVIDER_ERROR),
    ("HTTPError", CallStatus.PROVIDER_ERROR),
)


def classify_exception(error: BaseException) -> CallStatus:
    """Return the call status for an exception that ended an LLM call."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt):
        return CallStatus.CANCELLED
    library_classes = {
        cls.__name__
        for cls in type(error).__mro__
        if cls.__module__.split(".", 1)[0] in _LIBRARY_MODULES
    }
    for class_name, status in _CLASS_STATUS:
        if class_name in library_classes:
            return status
    if isinstance(error, TimeoutError):
        return CallStatus.TIMEOUT

    return CallStatus.ERROR


def error_type_name(error: BaseException) -> str:
    """Return the exception's class as ``module.QualName``.

    Private submodules are left out: ``openai.RateLimitError``, not
    ``openai._exceptions.RateLimitError``.
    """
    cls = type(error)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    public = [part for part in module.split(".") if not part.startswith("_")]

    return ".".join([*public, cls.__qualname__])
