"""WSGI entry point of the Flask example gateway: ``examples.flask_gateway.wsgi:app``.

The provider comes from the environment:

- ``GATEWAY_PROVIDER_URL`` (required): base URL of the OpenAI-compatible API
  on a loopback address, including ``/v1``, for example
  ``http://127.0.0.1:8001/v1``.
- ``GATEWAY_PROVIDER_TIMEOUT``: timeout of each provider request in seconds,
  10 by default.

llmobs itself is configured per worker by ``gunicorn.conf.py``, next to this
module; see its docstring for the command line.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse

from examples.flask_gateway.app import create_app

PROVIDER_URL_ENV = "GATEWAY_PROVIDER_URL"
PROVIDER_TIMEOUT_ENV = "GATEWAY_PROVIDER_TIMEOUT"
DEFAULT_PROVIDER_TIMEOUT = 10.0


def provider_url_from_env() -> str:
    """Return the provider URL from the environment.

    Raises:
        RuntimeError: If it is unset, or not an http(s) URL on a loopback IP
            address. The example sends a placeholder API key, so it talks
            only to a local provider.
    """
    value = os.environ.get(PROVIDER_URL_ENV, "")
    if not value:
        raise RuntimeError(
            f"{PROVIDER_URL_ENV} is not set; set it to the provider's base URL, "
            "for example http://127.0.0.1:8001/v1"
        )
    parts = urllib.parse.urlsplit(value)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        address = None
    if parts.scheme not in ("http", "https") or address is None:
        raise RuntimeError(
            f"{PROVIDER_URL_ENV}={value!r} is not an http(s) URL with an IP "
            "address, for example http://127.0.0.1:8001/v1"
        )
    if not address.is_loopback:
        raise RuntimeError(
            f"{PROVIDER_URL_ENV}={value!r} is not on a loopback address; the "
            "example gateway sends a placeholder API key and talks only to a "
            "local provider"
        )
    return value.rstrip("/")


def provider_timeout_from_env() -> float:
    """Return the provider timeout in seconds from the environment.

    Raises:
        RuntimeError: If the value is not a positive number.
    """
    value = os.environ.get(PROVIDER_TIMEOUT_ENV)
    if value is None:
        return DEFAULT_PROVIDER_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise RuntimeError(
            f"{PROVIDER_TIMEOUT_ENV}={value!r} is invalid; expected a positive "
            "number of seconds"
        )
    return seconds


app = create_app(provider_url_from_env(), provider_timeout=provider_timeout_from_env())
