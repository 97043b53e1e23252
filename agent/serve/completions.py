"""``POST /v1/completions`` with token ids in and out, as vLLM serves it.

``prompt`` is a list of token ids; each choice carries ``token_ids`` (always, not only with
``return_token_ids``) and ``text``; ``stop_token_ids`` end the completion with the stop token
included; streaming sends one SSE event per engine delta and, with
``stream_options.include_usage``, a last event with usage and no choices.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.engine.base import EngineEvent, EngineRequest, Finished, FinishReason
from agent.errors import EngineError
from agent.serve import sse
from agent.serve.common import (
    ApiError,
    ServerState,
    check_model,
    new_id,
    parse,
    primed,
    sampling,
    state_of,
    usage,
)
from agent.serve.schemas import CompletionBody

log = structlog.get_logger(__name__)


def _text(state: ServerState, ids: Sequence[int]) -> str:
    try:
        return state.codec.decode(ids)
    except Exception:  # ids outside o200k (a toy vocabulary): the ids are what matters
        return ""


def _choice(state: ServerState, ids: Sequence[int], finished: Finished | None,
            stops: frozenset[int]) -> dict[str, Any]:
    reason = finished.reason.value if finished else None
    stop_reason = ids[-1] if finished and finished.reason is FinishReason.STOP and ids \
        and ids[-1] in stops else None
    return {"index": 0, "text": _text(state, ids), "token_ids": list(ids), "logprobs": None,
            "finish_reason": reason, "stop_reason": stop_reason}


async def completions(request: Request) -> Response:
    state = state_of(request)
    body = await parse(request, CompletionBody)
    check_model(state, body.model)
    try:
        prompt = body.prompt_ids()
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if not prompt:
        raise ApiError(400, "the prompt is empty")
    conversation = body.conversation_id or request.headers.get("x-conversation-id")
    engine_request = EngineRequest(
        prompt, frozenset(body.stop_token_ids),
        sampling(state, body.temperature, body.top_p, body.max_tokens, body.seed), conversation)
    head = {"id": new_id("cmpl-"), "object": "text_completion", "created": int(time.time()),
            "model": state.model_name}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = await primed(state.engine.generate(engine_request))
        return sse.stream(_stream(state, events, engine_request, head, include_usage))
    tokens: list[int] = []
    finished: Finished | None = None
    async for event in state.engine.generate(engine_request):
        if isinstance(event, Finished):
            finished = event
        else:
            tokens.extend(event.token_ids)
    if finished is None:
        raise EngineError("the engine stopped without finishing the completion")
    return JSONResponse(head | {
        "choices": [_choice(state, tokens, finished, engine_request.stop_tokens)],
        "usage": usage(finished.prompt_tokens, finished.completion_tokens,
                       finished.reused_tokens)})


async def _stream(state: ServerState, events: AsyncIterator[EngineEvent], request: EngineRequest,
                  head: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    last: Sequence[int] = ()
    delta = _DeltaEvents(state, head)
    # Tokens not sent yet: with stream_interval > 1 they go out in groups (one event, one socket
    # write and one client parse for several tokens); the first token is never held back. An
    # engine event may carry several tokens (deltas merged while this consumer fell behind):
    # split into groups of at most stream_interval; at 1, such an event stays one SSE event.
    interval = state.stream_interval
    held: list[int] = []
    sent = False
    try:
        async for event in events:
            if isinstance(event, Finished):
                if held:
                    yield delta(held)
                    held = []
                choice = _choice(state, (), event, request.stop_tokens)
                if event.reason is FinishReason.STOP and last and last[-1] in request.stop_tokens:
                    choice["stop_reason"] = last[-1]
                yield sse.event(head | {"choices": [choice]})
                if include_usage:
                    yield sse.event(head | {"choices": [], "usage": usage(
                        event.prompt_tokens, event.completion_tokens, event.reused_tokens)})
            else:
                last = event.token_ids
                if interval == 1:
                    yield delta(last)
                    continue
                if not sent:
                    sent = True
                    yield delta(last[:1])
                    held.extend(last[1:])
                else:
                    held.extend(last)
                while len(held) >= interval:
                    yield delta(held[:interval])
                    held = held[interval:]
    except EngineError as exc:
        log.warning("serve.engine_failed", error=str(exc))
        if held:
            yield delta(held)
        yield sse.error_event(str(exc))
    yield sse.DONE


class _DeltaEvents:
    """The SSE event of a token delta, from byte templates: one per token per request is the
    server's hottest path, and everything but ``text`` and ``token_ids`` is the same in each.
    The bytes equal ``sse.event(head | {"choices": [_choice(state, ids, None, ...)]})``."""

    def __init__(self, state: ServerState, head: dict[str, Any]) -> None:
        self._state = state
        opening = sse.event(head | {"choices": [{"index": 0, "text": ""}]})
        self._prefix = opening[:opening.rindex(b'""}]}')]  # up to the text value
        self._texts = state.token_texts

    def __call__(self, ids: Sequence[int]) -> bytes:
        if len(ids) == 1:
            text = self._texts.get(ids[0])
            if text is None:
                text = _json(_text(self._state, ids))
                if len(self._texts) < _TEXTS_MAX:
                    self._texts[ids[0]] = text
        else:
            text = _json(_text(self._state, ids))
        return b"".join((self._prefix, text, b',"token_ids":[',
                         ",".join(map(str, ids)).encode(), _DELTA_END))


# One token's JSON text, cached per server (decoding is pure): a stream's tokens are mostly
# new to that stream, but not to the server. Bounded for vocabularies larger than usual.
_TEXTS_MAX = 1 << 18
_DELTA_END = b'],"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n'


def _json(text: str) -> bytes:
    return json.dumps(text).encode()
