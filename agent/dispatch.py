"""From a parsed message to a tool reply: route, ask the policy, call, cap, redact.

Everything the model got wrong (unknown recipient, bad arguments, a denied call, a timeout)
comes back as a record whose output tells the model what happened; nothing here raises for it.
"""

from __future__ import annotations

import time
import uuid

import anyio
import structlog

from agent.errors import AgentRunError, PolicyDenied, ToolError, ToolTimeout, UnknownRecipient
from agent.events import Outcome, PolicyChecked, ToolCallRecord, ToolFinished, ToolStarted
from agent.harmony.parser import ParsedMessage
from agent.state import Route, RunDeps, RunState
from toolkits.base import ToolCall, ToolReply

log = structlog.get_logger(__name__)

HARD_STOP_GRACE_S = 5.0


def to_call(message: ParsedMessage) -> ToolCall:
    recipient = message.recipient or ""
    namespace, _, method = recipient.partition(".")
    return ToolCall(recipient, namespace, method or None, message.text, message.channel,
                    message.content_type, uuid.uuid4().hex[:12])


def resolve(routes: dict[str, Route], recipient: str) -> Route:
    """The route for a recipient: the exact name first (``functions.apply_patch``), then its
    namespace (``browser`` for ``browser.search``)."""
    route = routes.get(recipient) or routes.get(recipient.partition(".")[0])
    if route is None:
        valid = ", ".join(sorted(routes)) or "none"
        raise UnknownRecipient(
            f"there is no tool {recipient!r}. Tools you can address: {valid}", recipient=recipient
        )
    return route


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n…[output truncated: {len(text) - limit} more characters]"


async def _invoke(deps: RunDeps, call: ToolCall) -> tuple[Outcome, ToolReply]:
    try:
        route = resolve(deps.routes, call.recipient)
    except UnknownRecipient as exc:
        return Outcome.UNKNOWN, ToolReply(exc.message, is_error=True)
    decision = await deps.policy.authorize(call)
    await deps.emit(PolicyChecked(call, decision))
    if not decision.allowed:
        return Outcome.DENIED, ToolReply(
            f"The call to {call.recipient} was denied by policy ({decision.rule}): "
            f"{decision.reason}.", is_error=True)
    timeout = deps.policy.timeout_for(call.recipient)
    try:
        # Toolkits that can stop gracefully (python interrupts the code and keeps its state)
        # enforce the timeout themselves; this hard stop is the backstop, a little later.
        with anyio.fail_after(timeout + HARD_STOP_GRACE_S):
            return Outcome.OK, await route.session.call(call)
    except TimeoutError:
        return Outcome.TIMEOUT, ToolReply(
            f"{call.recipient} timed out after {timeout:g} seconds and was stopped.",
            is_error=True)
    except ToolTimeout as exc:
        return Outcome.TIMEOUT, ToolReply(exc.message, is_error=True)
    except ToolError as exc:
        outcome = Outcome.DENIED if isinstance(exc, PolicyDenied) else Outcome.ERROR
        return outcome, ToolReply(exc.message, is_error=True)
    except AgentRunError:
        raise
    except Exception as exc:  # a toolkit bug must not end every run of a batch
        log.exception("tool_crashed", recipient=call.recipient)
        return Outcome.ERROR, ToolReply(
            f"{call.recipient} failed with an internal error ({type(exc).__name__}).",
            is_error=True)


async def dispatch(deps: RunDeps, state: RunState, message: ParsedMessage) -> ToolCallRecord:
    """Run one tool call and append its reply to the transcript."""
    call = to_call(message)
    await deps.emit(ToolStarted(call))
    start = time.monotonic()
    outcome, reply = await _invoke(deps, call)
    duration = time.monotonic() - start
    text = deps.policy.redact(cap(reply.text, deps.limits.max_tool_output_chars))
    record = ToolCallRecord(call, outcome, text, start - state.started, duration,
                            dict(reply.metadata))
    state.transcript.add_tool_reply(call.recipient, text, message.channel)
    state.tool_calls.append(record)
    state.consecutive_errors = 0 if outcome is Outcome.OK else state.consecutive_errors + 1
    log.info("tool_call", recipient=call.recipient, outcome=outcome.value,
             duration_ms=round(duration * 1000, 2))
    await deps.emit(ToolFinished(record))
    return record
