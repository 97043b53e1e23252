"""``POST /v1/chat/completions``: messages rendered to Harmony, the completion parsed back.

Analysis goes out as ``reasoning_content`` (vLLM's name), final text as ``content``, messages to
``functions.NAME`` as ``tool_calls`` (``finish_reason: "tool_calls"``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.errors import EngineError
from agent.serve import sse
from agent.serve.common import (
    ApiError,
    check_model,
    new_id,
    parse,
    primed,
    sampling,
    state_of,
    usage,
)
from agent.serve.conversation import BadConversation, chat_prompt
from agent.serve.schemas import ChatBody
from agent.serve.turn import PartDelta, PartEnd, PartStart, TurnDone, TurnEvent, run_turn

log = structlog.get_logger(__name__)


def finish_reason(done: TurnDone) -> str:
    if done.has_calls:
        return "tool_calls"
    return {"length": "length", "abort": "abort"}.get(done.reason.value, "stop")


def _usage(done: TurnDone) -> dict[str, Any]:
    return usage(done.prompt_tokens, done.completion_tokens, done.cached_tokens,
                 done.reasoning_tokens)


async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    body = await parse(request, ChatBody)
    check_model(state, body.model)
    try:
        prompt = chat_prompt(state.codec, body)
    except BadConversation as exc:
        raise ApiError(400, str(exc)) from None
    params = sampling(state, body.temperature, body.top_p,
                      body.max_completion_tokens or body.max_tokens, body.seed)
    events = await primed(run_turn(state.engine, state.codec, prompt, params,
                      request.headers.get("x-conversation-id")))
    head = {"id": new_id("chatcmpl-"), "created": int(time.time()), "model": state.model_name}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse.stream(_stream(events, head, include_usage))
    return JSONResponse(await _complete(events, head))


async def _complete(events: AsyncIterator[TurnEvent], head: dict[str, Any]) -> dict[str, Any]:
    reasoning: list[str] = []
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    done: TurnDone | None = None
    async for ev in events:
        match ev:
            case PartEnd(kind="reasoning"):
                reasoning.append(ev.text)
            case PartEnd(kind="text"):
                text.append(ev.text)
            case PartEnd(kind="call"):
                calls.append({"id": ev.call_id, "type": "function",
                              "function": {"name": ev.name, "arguments": ev.text}})
            case TurnDone():
                done = ev
    assert done is not None
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(text) or None,
                               "reasoning_content": "\n\n".join(reasoning) or None}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "finish_reason": finish_reason(done),
              "logprobs": None}
    return head | {"object": "chat.completion", "choices": [choice], "usage": _usage(done)}


def _delta(ev: PartStart | PartDelta, call_index: dict[int, int]) -> dict[str, Any] | None:
    if isinstance(ev, PartStart):
        if ev.kind != "call":
            return None
        call_index[ev.index] = len(call_index)
        return {"tool_calls": [{"index": call_index[ev.index], "id": ev.call_id,
                                "type": "function",
                                "function": {"name": ev.name, "arguments": ""}}]}
    if ev.kind == "call":
        return {"tool_calls": [{"index": call_index[ev.index],
                                "function": {"arguments": ev.text}}]}
    return {"reasoning_content" if ev.kind == "reasoning" else "content": ev.text}


async def _stream(events: AsyncIterator[TurnEvent], head: dict[str, Any],
                  include_usage: bool) -> AsyncIterator[bytes]:
    head = head | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return sse.event(head | {"choices": [{"index": 0, "delta": delta,
                                              "finish_reason": reason, "logprobs": None}]})

    yield chunk({"role": "assistant", "content": ""})
    call_index: dict[int, int] = {}
    try:
        async for ev in events:
            if isinstance(ev, PartStart | PartDelta):
                delta = _delta(ev, call_index)
                if delta is not None:
                    yield chunk(delta)
            elif isinstance(ev, TurnDone):
                yield chunk({}, finish_reason(ev))
                if include_usage:
                    yield sse.event(head | {"choices": [], "usage": _usage(ev)})
    except EngineError as exc:
        log.warning("serve.engine_failed", error=str(exc))
        yield sse.error_event(str(exc))
    yield sse.DONE
