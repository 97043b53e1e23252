"""The agent loop: decode a turn, parse it, dispatch a tool call, repeat until a final answer.

    run_loop: limits -> decode_turn (engine -> parser) -> apply_turn (transcript, dispatch)

Malformed completions and tool mistakes are written into the conversation for the model to fix;
infrastructure failures (engine, sandbox) propagate to the caller.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import openai_harmony as oh
import structlog

from agent.dispatch import dispatch
from agent.engine.base import EngineRequest, Finished, FinishReason, TokenDelta
from agent.errors import EngineError, HarmonyParseError
from agent.events import FormatError, MessageDone, StopReason, TextDelta, TurnFinished, TurnUsage
from agent.harmony.parser import ParsedMessage
from agent.state import RunDeps, RunState

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Turn:
    tokens: list[int]
    messages: list[ParsedMessage]
    error: HarmonyParseError | None
    usage: TurnUsage


def _token_allowance(deps: RunDeps, state: RunState) -> int:
    allowance = deps.limits.max_tokens_per_turn
    if deps.limits.max_completion_tokens is not None:
        allowance = min(allowance, deps.limits.max_completion_tokens - state.completion_tokens)
    budget = deps.policy.remaining("completion_tokens")
    if budget is not None:
        allowance = min(allowance, int(budget))
    return allowance


def _limit_reached(deps: RunDeps, state: RunState) -> StopReason | None:
    if state.turn >= deps.limits.max_turns:
        return StopReason.MAX_TURNS
    if _token_allowance(deps, state) <= 0:
        return StopReason.MAX_TOKENS
    if state.consecutive_errors >= deps.limits.max_consecutive_errors:
        return StopReason.TOOL_ERRORS
    return None


async def decode_turn(deps: RunDeps, state: RunState) -> Turn:
    """One engine call, parsed token by token as it streams."""
    prompt = state.transcript.prompt()
    sampling = dataclasses.replace(deps.sampling, max_tokens=_token_allowance(deps, state))
    request = EngineRequest(prompt, deps.codec.stop_tokens, sampling, deps.context.run_id)
    parser = deps.codec.parser()
    tokens: list[int] = []
    finished: Finished | None = None
    error: HarmonyParseError | None = None
    stream = deps.engine.generate(request)
    try:
        async for event in stream:
            if isinstance(event, TokenDelta):
                tokens.extend(event.token_ids)
                for token in event.token_ids:
                    for delta in parser.feed(token):
                        await deps.emit(TextDelta(delta.channel, delta.recipient, delta.text))
            else:
                finished = event
    except HarmonyParseError as exc:  # stop decoding: the rest cannot be parsed either
        error = exc
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    if finished is None and error is None:
        raise EngineError("the engine's stream ended without a Finished event")
    messages: list[ParsedMessage] = []
    if error is None:
        try:
            messages = parser.finish(truncated=finished is not None
                                     and finished.reason is FinishReason.LENGTH)
        except HarmonyParseError as exc:
            error = exc
    reused = finished.reused_tokens if finished else 0
    return Turn(tokens, messages, error, TurnUsage(state.turn, len(prompt), reused, len(tokens)))


def _feedback(deps: RunDeps, error: HarmonyParseError) -> oh.Message:
    text = f"Your last message could not be read: {error.reason}."
    if error.recipient:
        return deps.codec.tool_message(error.recipient, text, error.channel)
    return oh.Message.from_role_and_content(oh.Role.SYSTEM, text)


async def _recover(deps: RunDeps, state: RunState, turn: Turn) -> list[ParsedMessage]:
    """Keep what was valid in a malformed completion; tell the model about the rest."""
    assert turn.error is not None
    error = turn.error
    await deps.emit(FormatError(error.reason, error.raw_text))
    log.warning("harmony_format_error", reason=error.reason, turn=state.turn)
    valid = [m for m in error.messages if isinstance(m, ParsedMessage)]
    state.transcript.add_messages([m.to_harmony() for m in valid])
    if valid and valid[-1].end in ("call", "return"):
        return valid  # only text after a complete action was wrong: act on the action
    state.transcript.add_messages([_feedback(deps, error)])
    state.consecutive_errors += 1
    return []


async def apply_turn(deps: RunDeps, state: RunState, turn: Turn) -> bool:
    """Record a turn and act on it. True when the run has its final answer."""
    if turn.error is None:
        state.transcript.add_completion(turn.tokens, turn.messages)
        messages = turn.messages
    else:
        messages = await _recover(deps, state, turn)
    for message in messages:
        await deps.emit(MessageDone(message))
    if not messages:
        return False
    last = messages[-1]
    if last.is_tool_call:
        await dispatch(deps, state, last)
        return False
    if last.channel == "final":
        state.final_answer = last.text
        return True
    return False


async def run_loop(deps: RunDeps, state: RunState) -> StopReason:
    """Turns until a final answer or a limit. The caller handles deadline and cancellation."""
    while (reason := _limit_reached(deps, state)) is None:
        state.turn += 1
        turn = await decode_turn(deps, state)
        state.usage.append(turn.usage)
        state.completion_tokens += turn.usage.completion_tokens
        deps.policy.spent["completion_tokens"] += turn.usage.completion_tokens
        await deps.emit(TurnFinished(turn.usage))
        if await apply_turn(deps, state, turn):
            return StopReason.FINAL
        if not turn.tokens:
            return StopReason.NO_ACTION
    return reason
