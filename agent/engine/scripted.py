"""Engines for tests and recipe rehearsals: replay scripted completions, or call a function.

``ScriptedEngine(["<|channel|>final<|message|>Hi!<|return|>"])`` answers each call of a
conversation with the next completion of the script, token by token, exactly as a real engine
streams. Every conversation (``conversation_id``) replays the script from its start, so one engine
serves many concurrent runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import anyio

from agent.engine.base import EngineEvent, EngineRequest, Finished, FinishReason, TokenDelta
from agent.errors import EngineError
from agent.harmony.codec import HarmonyCodec

Completion = str | Sequence[int]


class _PrefixTracker:
    """Reports how many prompt tokens an engine with a per-conversation cache would reuse."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, ...]] = {}

    def reused(self, request: EngineRequest, completion: Sequence[int]) -> int:
        key = request.conversation_id
        if key is None:
            return 0
        prompt = tuple(request.prompt_tokens)
        prev = self._last.get(key, ())
        n = len(prev)
        reused = n if prompt[:n] == prev else _common_prefix(prompt, prev)
        self._last[key] = (*prompt, *completion)
        return reused


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


async def _stream(
    request: EngineRequest, tokens: Sequence[int], reused: int, chunk: int
) -> AsyncIterator[EngineEvent]:
    limit = request.sampling.max_tokens
    out: list[int] = []
    reason = FinishReason.LENGTH
    for token in tokens:
        if len(out) >= limit:
            break
        out.append(token)
        if token in request.stop_tokens:
            reason = FinishReason.STOP
            break
    else:
        reason = FinishReason.STOP
    for i in range(0, len(out), chunk):
        yield TokenDelta(tuple(out[i : i + chunk]))
        await anyio.lowlevel.checkpoint()
    yield Finished(reason, len(request.prompt_tokens), len(out), reused)


class ScriptedEngine:
    """Replays assistant completions (Harmony text or token lists) in order, per conversation."""

    def __init__(self, completions: Sequence[Completion], *, codec: HarmonyCodec | None = None,
                 chunk_tokens: int = 1) -> None:
        self._codec = codec or HarmonyCodec()
        self.completions = [self._codec.encode(c) if isinstance(c, str) else list(c)
                            for c in completions]
        self._turn: dict[str | None, int] = {}
        self._prefix = _PrefixTracker()
        self._chunk = chunk_tokens
        self.requests: list[EngineRequest] = []

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        turn = self._turn.get(request.conversation_id, 0)
        if turn >= len(self.completions):
            raise EngineError(
                f"the script has {len(self.completions)} completions and the run asked for "
                f"completion {turn + 1}; add more completions to the ScriptedEngine"
            )
        self._turn[request.conversation_id] = turn + 1
        self.requests.append(request)
        tokens = self.completions[turn]
        reused = self._prefix.reused(request, tokens)
        async for event in _stream(request, tokens, reused, self._chunk):
            yield event

    async def aclose(self) -> None:
        self._turn.clear()


class FunctionEngine:
    """Completes each prompt by calling ``fn(prompt_text) -> completion`` (text or tokens)."""

    def __init__(self, fn: Callable[[str], Completion], *, codec: HarmonyCodec | None = None):
        self._codec = codec or HarmonyCodec()
        self._fn = fn
        self._prefix = _PrefixTracker()

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        result = self._fn(self._codec.decode(request.prompt_tokens))
        tokens = self._codec.encode(result) if isinstance(result, str) else list(result)
        reused = self._prefix.reused(request, tokens)
        async for event in _stream(request, tokens, reused, 1):
            yield event

    async def aclose(self) -> None:
        return None
