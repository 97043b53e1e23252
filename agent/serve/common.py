"""What every endpoint shares: the server's state, body parsing, errors in OpenAI's JSON shape."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from agent.engine.base import Engine, SamplingParams
from agent.harmony.codec import HarmonyCodec

B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")


@dataclass(slots=True)
class ServerState:
    engine: Engine
    codec: HarmonyCodec
    model_name: str
    created: int = field(default_factory=lambda: int(time.time()))
    max_tokens: int = 2048  # default completion budget when a request names none
    in_flight: int = 0  # requests being answered (the health endpoint reports it)
    stream_interval: int = 1  # tokens per completions SSE event (the first goes out alone)
    token_texts: dict[int, bytes] = field(default_factory=dict)  # a token's JSON text, by id


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.kind)


def error_response(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}},
                        status_code=status)


def state_of(request: Request) -> ServerState:
    return request.app.state.server  # type: ignore[no-any-return]


async def parse(request: Request, model: type[B]) -> B:
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                           for e in exc.errors()[:5])
        raise ApiError(400, f"invalid request body: {errors}") from None


def check_model(state: ServerState, name: str | None) -> None:
    if name is not None and name != state.model_name:
        raise ApiError(404, f"model {name!r} is not served here; this server serves "
                       f"{state.model_name!r}", "not_found_error")


def sampling(state: ServerState, temperature: float | None, top_p: float | None,
             max_tokens: int | None, seed: int | None) -> SamplingParams:
    return SamplingParams(
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        max_tokens=max_tokens or state.max_tokens, seed=seed,
    )


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def usage(prompt: int, completion: int, cached: int, reasoning: int = 0) -> dict[str, Any]:
    """Usage in the chat/completions shape (vLLM's ``prompt_tokens_details`` included)."""
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning}}


async def primed(events: AsyncIterator[T]) -> AsyncIterator[T]:
    """``events`` with its first item already taken, so that a request the engine refuses
    fails as an HTTP error status instead of an error event inside a 200 stream."""
    iterator = aiter(events)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return _empty()

    async def rest() -> AsyncIterator[T]:
        yield first
        async for item in iterator:
            yield item

    return rest()


async def _empty() -> AsyncIterator[Any]:
    return
    yield
