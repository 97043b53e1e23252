"""One assistant turn: decode on the engine, parse Harmony as tokens arrive, emit typed parts.

Both chat completions and the Responses API are renderings of the same stream of events:

    PartStart(kind, index, ...) -> PartDelta(kind, index, text)* -> PartEnd(kind, index, text)
    ... then one TurnDone (finish reason, usage, whether the Harmony was complete).

``kind`` is ``reasoning`` (analysis), ``text`` (final, or a commentary preamble) or ``call``
(a message addressed to a tool; ``name`` is the function name without ``functions.``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import structlog

from agent.engine.base import Engine, EngineRequest, Finished, FinishReason, SamplingParams
from agent.errors import EngineError, HarmonyParseError
from agent.harmony.codec import HarmonyCodec
from agent.harmony.parser import CompletionParser, Header

log = structlog.get_logger(__name__)

PartKind = Literal["reasoning", "text", "call"]


@dataclass(frozen=True, slots=True)
class PartStart:
    kind: PartKind
    index: int
    call_id: str | None = None
    name: str | None = None
    tag: Literal["start"] = "start"


@dataclass(frozen=True, slots=True)
class PartDelta:
    kind: PartKind
    index: int
    text: str
    tag: Literal["delta"] = "delta"


@dataclass(frozen=True, slots=True)
class PartEnd:
    kind: PartKind
    index: int
    text: str
    call_id: str | None = None
    name: str | None = None
    tag: Literal["end"] = "end"


@dataclass(frozen=True, slots=True)
class TurnDone:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    complete: bool  # False: the Harmony was cut or malformed (parts kept up to the fault)
    has_calls: bool
    tag: Literal["done"] = "done"


TurnEvent = PartStart | PartDelta | PartEnd | TurnDone


@dataclass(slots=True)
class _Open:
    start: PartStart
    text: list[str] = field(default_factory=list)


def _kind(header: Header) -> tuple[PartKind, str | None]:
    recipient = header.recipient
    if recipient is not None and recipient != "assistant":
        return "call", recipient.removeprefix("functions.")
    return ("reasoning" if header.channel == "analysis" else "text"), None


class TurnCollector:
    """Feeds completion tokens to the strict parser and turns them into part events."""

    def __init__(self, parser: CompletionParser) -> None:
        self._parser = parser
        self._open: _Open | None = None
        self._index = 0
        self.reasoning_tokens = 0
        self.has_calls = False
        self.failed: HarmonyParseError | None = None

    def feed(self, token: int) -> list[TurnEvent]:
        if self.failed is not None:
            return []  # after a fault the rest of the completion is not Harmony we can trust
        before = len(self._parser.messages)
        try:
            deltas = self._parser.feed(token)
        except HarmonyParseError as exc:
            self.failed = exc
            log.warning("serve.harmony_fault", reason=exc.reason)
            return self._close()
        events: list[TurnEvent] = []
        header = self._parser.current
        if header is not None and self._open is None:
            kind, name = _kind(header)
            call_id = f"call_{uuid.uuid4().hex[:24]}" if kind == "call" else None
            self._open = _Open(PartStart(kind, self._index, call_id, name))
            self.has_calls |= kind == "call"
            events.append(self._open.start)
        if self._open is not None:
            if self._open.start.kind == "reasoning":
                self.reasoning_tokens += 1
            for d in deltas:
                self._open.text.append(d.text)
                events.append(PartDelta(self._open.start.kind, self._open.start.index, d.text))
        if len(self._parser.messages) > before:
            events += self._close(self._parser.messages[-1].text)
        return events

    def _close(self, text: str | None = None) -> list[TurnEvent]:
        if self._open is None:
            return []
        s, parts = self._open.start, self._open.text
        self._open = None
        self._index += 1
        full = text if text is not None else "".join(parts)  # cut short: what arrived
        return [PartEnd(s.kind, s.index, full, s.call_id, s.name)]

    def finish(self, reason: FinishReason) -> list[TurnEvent]:
        """End of the completion: closes a part cut short, records whether Harmony was whole."""
        if self.failed is None:
            try:
                self._parser.finish(truncated=reason is FinishReason.LENGTH)
            except HarmonyParseError as exc:
                self.failed = exc
        return self._close()


async def run_turn(engine: Engine, codec: HarmonyCodec, prompt: list[int],
                   sampling: SamplingParams, conversation_id: str | None = None
                   ) -> AsyncIterator[TurnEvent]:
    """Decode one assistant turn for ``prompt``. Raises EngineError from the engine."""
    collector = TurnCollector(codec.parser())
    request = EngineRequest(prompt, codec.stop_tokens, sampling, conversation_id)
    finished: Finished | None = None
    async for event in engine.generate(request):
        if isinstance(event, Finished):
            finished = event
            break
        for token in event.token_ids:
            for out in collector.feed(token):
                yield out
    if finished is None:
        raise EngineError("the engine stopped without finishing the completion")
    for out in collector.finish(finished.reason):
        yield out
    yield TurnDone(finished.reason, finished.prompt_tokens, finished.completion_tokens,
                   finished.reused_tokens, collector.reasoning_tokens, collector.failed is None,
                   collector.has_calls)
