"""Running the app with uvicorn: in the foreground (``agent serve``) or as a task (tests).

Shutdown is graceful: on SIGINT/SIGTERM (or ``should_exit``) uvicorn stops accepting, lets the
requests in flight finish for up to ``grace_s`` seconds, then runs the app's lifespan shutdown
(which closes the engine when the app owns it).
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import structlog
import uvicorn
from starlette.types import ASGIApp

log = structlog.get_logger(__name__)


def _config(app: ASGIApp, host: str, port: int, grace_s: float) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=int(grace_s), timeout_keep_alive=30,
        # Many concurrent streams are the normal load: no limit below the engine's own.
        backlog=2048,
    )


async def serve(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 8000,
                grace_s: float = 30) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully and return (exit status 0)."""
    server = uvicorn.Server(_config(app, host, port, grace_s))
    # Our own signal handling: uvicorn's re-raises the signal after shutdown, which would end
    # the process with -SIGTERM even when every request finished cleanly.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    async with anyio.create_task_group() as tg:
        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("serve.signal", signal=signal.Signals(signum).name)
                    if server.should_exit:
                        server.force_exit = True  # a second signal: stop waiting
                    server.should_exit = True

        tg.start_soon(watch)
        await server.serve()
        tg.cancel_scope.cancel()


@asynccontextmanager
async def running(app: ASGIApp, *, host: str = "127.0.0.1", grace_s: float = 5
                  ) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the duration of the block; yields the base URL.

    Usage::

        async with running(build_app(engine)) as url:   # "http://127.0.0.1:PORT"
            ...
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(app, host, port, grace_s))
    # Signals belong to the host program (pytest, a notebook): uvicorn must not take them.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:
            if server.should_exit:
                raise RuntimeError("the server failed to start")
            await anyio.sleep(0.01)
        try:
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
    sock.close()
