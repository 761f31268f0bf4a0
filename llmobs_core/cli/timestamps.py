"""Parse RFC 3339 timestamps given on the command line."""

from __future__ import annotations

import argparse
from datetime import datetime


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with its UTC offset, for argparse.

    Raises:
        argparse.ArgumentTypeError: If ``value`` is not RFC 3339 or has no
            offset.
    """
    try:
        timestamp = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid timestamp {value!r}; use RFC 3339, for example "
            "2026-01-31T12:00:00Z"
        ) from None
    if timestamp.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"timestamp {value!r} has no UTC offset; add Z or +00:00"
        )
    return timestamp
