"""Log a repeated warning at most once per interval per key."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedWarning:
    """Log a WARNING at most once every ``interval`` seconds for each key.

    The warning after a quiet interval reports how many were suppressed.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(
        self, key: str, message: str, *args: object, exc_info: bool = False
    ) -> None:
        """Log ``message % args`` unless ``key`` was logged within the interval."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message = f"{message} ({suppressed} similar warnings suppressed)"
        self._logger.warning(message, *args, exc_info=exc_info)
