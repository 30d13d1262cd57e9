"""Serving the admin app with hypercorn inside the EIR's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING

from eir.admin.app import build_app

if TYPE_CHECKING:
    from eir.server import EirServer

__all__ = ["serve_admin"]

log = logging.getLogger("eir.admin")
GRACEFUL_TIMEOUT = 3.0


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket: port 0 gets a free port (read it back with getsockname)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_admin(server: EirServer, host: str, port: int, *, token: str | None, stop: asyncio.Event,
                      ready: asyncio.Future[tuple[str, int]]) -> None:
    """Serve the admin API of ``server`` on ``host:port`` until ``stop`` is set.

    The socket is bound before hypercorn starts so ``ready`` gets the real (host, port) at once,
    also for port 0; a bind failure is set on ``ready`` as the exception (and this returns).
    """
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    try:
        sock = _listening_socket(host, port)
    except OSError as exc:
        if not ready.done():
            ready.set_exception(OSError(exc.errno, f"admin API cannot listen on {host}:{port}: {exc.strerror}"))
        return
    name = sock.getsockname()
    bound = (str(name[0]), int(name[1]))
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the descriptor from here on
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.include_server_header = False
    app = build_app(server, token=token, stopping=stop)
    log.info("admin API on http://%s:%d (token %s)", *bound, "required" if token else "not required")
    if not ready.done():
        ready.set_result(bound)
    try:
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    except Exception as exc:
        log.exception("admin API stopped on an error")
        with contextlib.suppress(asyncio.InvalidStateError):
            ready.set_exception(exc)
