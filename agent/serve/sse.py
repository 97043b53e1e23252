"""Server-sent events: one ``data:`` line of JSON per event, ``[DONE]`` at the end (OpenAI style)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

DONE = b"data: [DONE]\n\n"


def event(data: Any, name: str | None = None) -> bytes:
    """One SSE event; ``name`` adds an ``event:`` line (the Responses API names its events)."""
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def error_event(message: str, kind: str = "server_error", code: int = 500) -> bytes:
    return event({"error": {"message": message, "type": kind, "code": code}})


def stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    # no-cache and no proxy buffering: tokens must reach the client as they are produced.
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
