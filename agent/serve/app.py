"""The ASGI application: any :class:`~agent.engine.base.Engine` behind OpenAI-compatible routes.

    GET  /health              200 {"status": "ok", ...} while serving
    GET  /v1/models           the one served model
    POST /v1/completions      token ids in and out (vLLM's shape), SSE streaming
    POST /v1/chat/completions Harmony rendered and parsed by the server, function tools
    POST /v1/responses        the Responses API subset for a chat with function tools

Requests go straight to ``engine.generate``; concurrency is the engine's own (the bundled engine
batches every in-flight request continuously). A client that disconnects cancels its request,
which aborts its decoding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.engine.base import Engine
from agent.errors import EngineError
from agent.harmony.codec import HarmonyCodec
from agent.serve.chat import chat_completions
from agent.serve.common import ApiError, ServerState, error_response, state_of
from agent.serve.completions import completions
from agent.serve.responses import responses

log = structlog.get_logger(__name__)


async def health(request: Request) -> Response:
    state = state_of(request)
    return JSONResponse({"status": "ok", "model": state.model_name, "in_flight": state.in_flight})


async def models(request: Request) -> Response:
    state = state_of(request)
    card = {"id": state.model_name, "object": "model", "created": state.created,
            "owned_by": "oss-agent", "root": state.model_name}
    return JSONResponse({"object": "list", "data": [card]})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _engine_error(request: Request, exc: Exception) -> Response:
    log.warning("serve.engine_failed", path=request.url.path, error=str(exc))
    return error_response(500, f"the engine failed: {exc}", "engine_error")


class _InFlight:
    """Counts requests being answered, for /health and for logs at shutdown."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.in_flight -= 1


def build_app(engine: Engine, *, model_name: str = "gpt-oss", codec: HarmonyCodec | None = None,
              max_tokens: int = 2048, close_engine: bool = False,
              stream_interval: int = 1) -> ASGIApp:
    """The server for ``engine``. ``close_engine`` closes it when the app shuts down.
    ``stream_interval`` > 1 sends a completions stream's tokens in groups of that many (after
    the first), as vLLM's ``--stream-interval``: fewer events per token, later tokens."""
    if stream_interval < 1:
        raise ValueError(f"stream_interval must be >= 1, not {stream_interval}")
    state = ServerState(engine, codec or HarmonyCodec(), model_name, max_tokens=max_tokens,
                        stream_interval=stream_interval)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("serve.started", model=model_name)
        try:
            yield
        finally:
            log.info("serve.stopping", in_flight=state.in_flight)
            if close_engine:
                await engine.aclose()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
        ],
        exception_handlers={ApiError: _api_error, EngineError: _engine_error},
        lifespan=lifespan,
    )
    app.state.server = state
    return _InFlight(app, state)
