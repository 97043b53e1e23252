"""``POST /v1/responses``: the subset of the Responses API a chat with function tools needs.

Input: a string or a list of items (messages, ``function_call``, ``function_call_output``,
``reasoning``); ``instructions``; function ``tools``; ``reasoning.effort``; sampling. Stateless:
``previous_response_id`` and ``store`` are not supported (send the whole input each time).
Output items: ``reasoning`` (analysis), ``message`` (final text), ``function_call``.
Streaming sends the typed events the ``openai`` client parses, each with ``sequence_number``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.engine.base import FinishReason
from agent.errors import EngineError
from agent.serve import sse
from agent.serve.common import ApiError, check_model, new_id, parse, primed, sampling, state_of
from agent.serve.conversation import BadConversation, responses_prompt
from agent.serve.schemas import ResponsesBody
from agent.serve.turn import PartDelta, PartEnd, PartStart, TurnDone, TurnEvent, run_turn

log = structlog.get_logger(__name__)
_ITEM_PREFIX = {"reasoning": "rs_", "text": "msg_", "call": "fc_"}


def _item(ev: PartStart | PartEnd, item_id: str, done: bool) -> dict[str, Any]:
    text = ev.text if isinstance(ev, PartEnd) else ""
    status = "completed" if done else "in_progress"
    if ev.kind == "call":
        return {"type": "function_call", "id": item_id, "call_id": ev.call_id, "name": ev.name,
                "arguments": text, "status": status}
    if ev.kind == "reasoning":
        return {"type": "reasoning", "id": item_id, "summary": [], "status": status,
                "content": [{"type": "reasoning_text", "text": text}] if done else []}
    return {"type": "message", "id": item_id, "role": "assistant", "status": status,
            "content": [_part("text", text)] if done else []}


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "reasoning":
        return {"type": "reasoning_text", "text": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _envelope(body: ResponsesBody, rid: str, model: str, created: int) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": created, "model": model,
            "status": "in_progress", "output": [], "error": None, "incomplete_details": None,
            "instructions": body.instructions, "metadata": {}, "parallel_tool_calls": True,
            "temperature": body.temperature, "top_p": body.top_p,
            "max_output_tokens": body.max_output_tokens,
            "tool_choice": body.tool_choice or "auto",
            "tools": [t.model_dump() | {"strict": False} for t in body.tools], "usage": None}


def _finish(envelope: dict[str, Any], output: list[dict[str, Any]],
            done: TurnDone) -> dict[str, Any]:
    cut = done.reason is FinishReason.LENGTH
    return envelope | {
        "status": "incomplete" if cut else "completed", "output": output,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "usage": {"input_tokens": done.prompt_tokens,
                  "input_tokens_details": {"cached_tokens": done.cached_tokens},
                  "output_tokens": done.completion_tokens,
                  "output_tokens_details": {"reasoning_tokens": done.reasoning_tokens},
                  "total_tokens": done.prompt_tokens + done.completion_tokens}}


async def responses(request: Request) -> Response:
    state = state_of(request)
    body = await parse(request, ResponsesBody)
    check_model(state, body.model)
    try:
        prompt = responses_prompt(state.codec, body)
    except (BadConversation, KeyError) as exc:
        raise ApiError(400, f"invalid input: {exc}") from None
    params = sampling(state, body.temperature, body.top_p, body.max_output_tokens, body.seed)
    events = await primed(run_turn(state.engine, state.codec, prompt, params,
                      request.headers.get("x-conversation-id")))
    envelope = _envelope(body, new_id("resp_"), state.model_name, int(time.time()))
    if body.stream:
        return sse.stream(_stream(events, envelope))
    output: list[dict[str, Any]] = []
    async for ev in events:
        if isinstance(ev, PartEnd):
            output.append(_item(ev, new_id(_ITEM_PREFIX[ev.kind]), True))
        elif isinstance(ev, TurnDone):
            return JSONResponse(_finish(envelope, output, ev))
    raise EngineError("the turn ended without a result")


async def _stream(events: AsyncIterator[TurnEvent], envelope: dict[str, Any]
                  ) -> AsyncIterator[bytes]:
    seq = itertools.count()

    def emit(kind: str, **data: Any) -> bytes:
        return sse.event({"type": kind, "sequence_number": next(seq), **data}, kind)

    yield emit("response.created", response=envelope)
    yield emit("response.in_progress", response=envelope)
    output: list[dict[str, Any]] = []
    ids: dict[int, str] = {}
    try:
        async for ev in events:
            if isinstance(ev, PartStart | PartDelta | PartEnd):
                for chunk in _part_events(ev, ids, len(output), emit):
                    yield chunk
                if isinstance(ev, PartEnd):
                    output.append(_item(ev, ids[ev.index], True))
            elif isinstance(ev, TurnDone):
                yield emit("response.completed", response=_finish(envelope, output, ev))
    except EngineError as exc:
        log.warning("serve.engine_failed", error=str(exc))
        yield emit("error", code="server_error", message=str(exc), param=None)


def _part_events(ev: PartStart | PartDelta | PartEnd, ids: dict[int, str], index: int,
                 emit: Any) -> list[bytes]:
    if isinstance(ev, PartStart):
        ids[ev.index] = item_id = new_id(_ITEM_PREFIX[ev.kind])
        out = [emit("response.output_item.added", output_index=index,
                    item=_item(ev, item_id, False))]
        if ev.kind != "call":
            out.append(emit("response.content_part.added", item_id=item_id, output_index=index,
                            content_index=0, part=_part(ev.kind, "")))
        return out
    item_id = ids[ev.index]
    loc: dict[str, Any] = {"item_id": item_id, "output_index": index}
    extra: dict[str, Any] = {"logprobs": []} if ev.kind == "text" else {}
    if isinstance(ev, PartDelta):
        if ev.kind == "call":
            return [emit("response.function_call_arguments.delta", delta=ev.text, **loc)]
        kind = "reasoning_text" if ev.kind == "reasoning" else "output_text"
        return [emit(f"response.{kind}.delta", content_index=0, delta=ev.text, **loc, **extra)]
    if ev.kind == "call":
        out = [emit("response.function_call_arguments.done", arguments=ev.text, name=ev.name,
                    **loc)]
    else:
        kind = "reasoning_text" if ev.kind == "reasoning" else "output_text"
        out = [emit(f"response.{kind}.done", content_index=0, text=ev.text, **loc, **extra),
               emit("response.content_part.done", content_index=0,
                    part=_part(ev.kind, ev.text), **loc)]
    out.append(emit("response.output_item.done", output_index=index,
                    item=_item(ev, item_id, True)))
    return out
