"""Run the fake provider under uvicorn on a loopback address.

Example::

    python -m examples.fake_provider --host 127.0.0.1 --port 0 --latency-scale 0.1

Once the server accepts connections, the command prints exactly one line,
``LISTENING http://<host>:<port>``, on stdout, with the port actually bound, so
``--port 0`` picks a free one. Logs go to stderr. SIGINT (Ctrl+C) and SIGTERM
both stop the server gracefully. After SIGTERM, uvicorn raises the signal again,
so the process ends with the SIGTERM status (143 in a shell), not 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn

from examples.fake_provider.app import FakeProviderConfig, create_app

logger = logging.getLogger("examples.fake_provider")


class _AnnouncingServer(uvicorn.Server):
    """Uvicorn server that prints the LISTENING line once it accepts connections."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start the server and print its URL on stdout."""
        await super().startup(sockets=sockets)
        if self.started:
            print(f"LISTENING {self.url}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, bind the socket and serve until stopped."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        config = FakeProviderConfig(
            latency_scale=args.latency_scale,
            seed=args.seed,
            slow_seconds=args.slow_seconds,
            error_rate_429=args.error_rate_429,
            error_rate_500=args.error_rate_500,
        )
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        sock = _bind_socket(args.host, args.port)
    except OSError as error:
        parser.exit(
            1, f"error: failed to listen on {args.host} port {args.port}: {error}\n"
        )
    url = _format_url(args.host, sock.getsockname()[1])
    uvicorn_config = uvicorn.Config(create_app(config), log_config=None)
    logger.info("starting fake provider on %s", url)
    try:
        _AnnouncingServer(uvicorn_config, url).run(sockets=[sock])
    except KeyboardInterrupt:
        # After a graceful stop on SIGINT, uvicorn raises the signal again.
        logger.info("fake provider on %s stopped", url)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.fake_provider",
        description=(
            "Serve fake OpenAI Chat Completions, OpenAI Responses and Anthropic "
            "Messages APIs on a loopback address."
        ),
    )
    parser.add_argument(
        "--host",
        type=_loopback_host,
        default="127.0.0.1",
        help="loopback IP address to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=0,
        help="TCP port to listen on, 0 for a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        help="factor for the simulated latency, 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for replies, latency and random errors (default: %(default)s)",
    )
    parser.add_argument(
        "--slow-seconds",
        type=float,
        default=FakeProviderConfig.slow_seconds,
        help="delay in seconds before a 'slow' response (default: %(default)s)",
    )
    parser.add_argument(
        "--error-rate-429",
        type=float,
        default=0.0,
        help="probability from 0 to 1 of a random 429 response (default: %(default)s)",
    )
    parser.add_argument(
        "--error-rate-500",
        type=float,
        default=0.0,
        help="probability from 0 to 1 of a random 500 response (default: %(default)s)",
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
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a loopback IP address. The fake provider listens "
            "only on loopback addresses, such as 127.0.0.1 or ::1."
        )
    return value


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
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY only on connections of sockets created with
    # IPPROTO_TCP. Without it, responses on kept-alive connections wait about
    # 40 ms for a delayed ACK on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _format_url(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


if __name__ == "__main__":
    main()
