r"""Run the example gateway under uvicorn on a loopback address.

Example::

    python -m examples.fastapi_gateway --provider-url http://127.0.0.1:8001/v1 \
        --port 0 --events-file events.jsonl --spans-file spans.jsonl

Once the server accepts connections, the command prints exactly one line,
``LISTENING http://<host>:<port>``, on stdout, with the port actually bound, so
``--port 0`` picks a free one. Call events go to ``--events-file`` (by default
stdout, after that line), spans to ``--spans-file`` and logs to stderr.

When ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
is set, spans are also exported over OTLP/HTTP, configured by the standard
``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``
and ``OTEL_BSP_*`` variables. The endpoint must be on a loopback address::

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
        python -m examples.fastapi_gateway --provider-url http://127.0.0.1:8001/v1

SIGINT or SIGTERM stops it, after the buffered spans are exported.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import uvicorn
from opentelemetry.sdk.trace import TracerProvider

import llmobs_core as llmobs
from examples.fastapi_gateway._tracing import (
    gateway_tracer_provider,
    otlp_traces_endpoint,
)
from examples.fastapi_gateway.app import create_app
from llmobs_core.emitters import EVENTS_LOGGER
from llmobs_core.privacy.policy import HASH_KEY_ENV

logger = logging.getLogger("examples.fastapi_gateway")

# For the demo only: user-id hashes made with a published key can be reversed
# by guessing ids. Real deployments set LLMOBS_HASH_KEY to a secret.
DEMO_HASH_KEY = "llmobs-demo-hash-key-not-secret"


class _GatewayServer(uvicorn.Server):
    """Uvicorn server that announces its URL and flushes spans when it stops.

    It prints the LISTENING line once it accepts connections.
    """

    def __init__(
        self, config: uvicorn.Config, url: str, tracer_provider: TracerProvider | None
    ) -> None:
        super().__init__(config)
        self.url = url
        self.tracer_provider = tracer_provider

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start the server and print its URL on stdout."""
        await super().startup(sockets=sockets)
        if self.started:
            print(f"LISTENING {self.url}", flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop serving, then export the spans waiting in the batch processor.

        The export happens here and not after ``run()`` returns, because
        uvicorn (0.55 here) re-raises the SIGTERM or SIGINT it caught when
        ``run()`` ends, and SIGTERM then ends the process at once.
        """
        await super().shutdown(sockets=sockets)
        llmobs.flush()
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
        logger.info("gateway on %s stopped", self.url)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, set up llmobs and serve until stopped."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        otlp_endpoint = otlp_traces_endpoint()
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    try:
        sock = _bind_socket(args.host, args.port)
    except OSError as error:
        parser.exit(
            1, f"error: failed to listen on {args.host} port {args.port}: {error}\n"
        )
    with sock, _open_events(args.events_file) as events:
        _run(args, sock, events, otlp_endpoint)


def _run(
    args: argparse.Namespace,
    sock: socket.socket,
    events: TextIO,
    otlp_endpoint: str | None,
) -> None:
    tracer_provider = gateway_tracer_provider(
        args.spans_file, otlp=otlp_endpoint is not None
    )
    if otlp_endpoint is not None:
        logger.info("exporting spans over OTLP/HTTP to %s", otlp_endpoint)
    handler = llmobs.install_json_handler(events)
    try:
        llmobs.configure(tracer_provider=tracer_provider, hash_key=_hash_key())
        _serve(args, sock, tracer_provider)
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()
        logging.getLogger(EVENTS_LOGGER).removeHandler(handler)
        handler.close()


def _open_events(path: Path | None) -> contextlib.AbstractContextManager[TextIO]:
    if path is None:
        return contextlib.nullcontext(sys.stdout)
    return path.open("a", encoding="utf-8")


def _serve(
    args: argparse.Namespace,
    sock: socket.socket,
    tracer_provider: TracerProvider | None,
) -> None:
    app = create_app(args.provider_url, provider_timeout=args.provider_timeout)
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    logger.info("starting gateway on %s, provider %s", url, args.provider_url)
    config = uvicorn.Config(app, log_config=None)
    _GatewayServer(config, url, tracer_provider).run(sockets=[sock])


def _hash_key() -> str:
    return os.environ.get(HASH_KEY_ENV) or DEMO_HASH_KEY


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.fastapi_gateway",
        description="Serve the llmobs example gateway on a loopback address.",
        epilog="Set OTEL_EXPORTER_OTLP_ENDPOINT (for example "
        "http://127.0.0.1:4318) or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT to also "
        "export spans over OTLP/HTTP. The other OTEL_EXPORTER_OTLP_* variables, "
        "OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply as usual.",
    )
    parser.add_argument(
        "--provider-url",
        type=_loopback_url,
        required=True,
        help="base URL of the OpenAI-compatible API on a loopback address, "
        "including /v1, for example http://127.0.0.1:8001/v1",
    )
    parser.add_argument(
        "--host",
        type=_loopback_host,
        default="127.0.0.1",
        help="loopback IPv4 address to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=0,
        help="TCP port to listen on, 0 for a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--events-file",
        type=Path,
        help="file to append call events to, one JSON object per line "
        "(default: stdout)",
    )
    parser.add_argument(
        "--spans-file",
        type=Path,
        help="file to append finished spans to, one JSON object per line "
        "(default: no file)",
    )
    parser.add_argument(
        "--provider-timeout",
        type=float,
        default=10.0,
        help="timeout of each provider request in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="minimum level of the log lines on stderr (default: %(default)s)",
    )
    return parser


def _loopback_host(value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a loopback IPv4 address. The example gateway "
            "listens only on loopback addresses, such as 127.0.0.1."
        )
    return value


def _loopback_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        address = None
    if parts.scheme not in ("http", "https") or address is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) URL with an IP address, for example "
            "http://127.0.0.1:8001/v1"
        )
    if not address.is_loopback:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not on a loopback address. The example gateway sends "
            "a placeholder API key and talks only to a local provider."
        )
    return value.rstrip("/")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a TCP port. Use a number from 0 to 65535."
        )
    return port


def _bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


if __name__ == "__main__":
    main()
