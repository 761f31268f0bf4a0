"""Run an ASGI application under uvicorn in a background thread for tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

LOOPBACK_HOST = "127.0.0.1"
_POLL_SECONDS = 0.01


@contextlib.contextmanager
def run_uvicorn_in_thread(
    app: ASGIApp,
    *,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    root_path: str = "",
) -> Iterator[str]:
    """Serve ``app`` on a free loopback port and yield its base URL.

    The socket is bound before uvicorn starts, so the port is known, and the
    context is entered only after uvicorn accepts connections. On exit it sets
    ``should_exit`` and joins the thread. If that takes longer than
    ``shutdown_timeout``, it sets ``force_exit``, which ends the wait for open
    connections and tasks, and joins again.

    Args:
        app: ASGI application to serve.
        startup_timeout: Maximum time in seconds to wait for the server to start.
        shutdown_timeout: Maximum time in seconds for each of the two joins.
        root_path: The ASGI ``root_path`` uvicorn sets on every request, as
            behind a proxy that strips this prefix.

    Yields:
        The base URL, for example ``http://127.0.0.1:41234``.

    Raises:
        RuntimeError: The server did not start or stop in time, or it raised
            an exception, which is then the cause.
    """
    # asyncio sets TCP_NODELAY only on connections of sockets created with
    # IPPROTO_TCP. Without it, responses on kept-alive connections wait about
    # 40 ms for a delayed ACK on Linux.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((LOOPBACK_HOST, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="auto", root_path=root_path)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []
    # A daemon thread cannot keep the test process alive if the server hangs.
    thread = threading.Thread(
        target=_serve,
        args=(server, sock, errors),
        name=f"uvicorn-{port}",
        daemon=True,
    )
    with sock:
        thread.start()
        try:
            _wait_until_started(server, thread, errors, startup_timeout)
            yield f"http://{LOOPBACK_HOST}:{port}"
        finally:
            _stop(server, thread, shutdown_timeout)
    if errors:
        raise RuntimeError("uvicorn stopped with an error") from errors[0]


def _serve(
    server: uvicorn.Server, sock: socket.socket, errors: list[BaseException]
) -> None:
    # BaseException includes the SystemExit of uvicorn's failed startup. The
    # caller's thread re-raises the stored error as the cause of a RuntimeError.
    try:
        server.run(sockets=[sock])
    except BaseException as error:  # noqa: BLE001
        errors.append(error)


def _wait_until_started(
    server: uvicorn.Server,
    thread: threading.Thread,
    errors: list[BaseException],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            cause = errors[0] if errors else None
            raise RuntimeError("uvicorn failed to start") from cause
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start within {timeout} s")
        time.sleep(_POLL_SECONDS)


def _stop(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> None:
    server.should_exit = True
    thread.join(timeout)
    if thread.is_alive():
        server.force_exit = True
        thread.join(timeout)
    if thread.is_alive():
        raise RuntimeError(f"uvicorn did not stop within {2 * timeout} s")
