"""Fixtures of the command-line tests."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from llmobs_core.cli import records


@pytest.fixture(params=["msgspec", "json"])
def line_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once with msgspec parsing lines and once with ``json``.

    The msgspec run is skipped when msgspec (the ``fast`` extra) is missing.
    """
    name: str = request.param
    if name == "msgspec" and importlib.util.find_spec("msgspec") is None:
        pytest.skip("msgspec is not installed; install the fast extra")
    assert records.use_msgspec(name == "msgspec") is (name == "msgspec")
    yield name
    records.use_msgspec(True)
