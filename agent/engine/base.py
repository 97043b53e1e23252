"""The engine protocol: prompt tokens in, completion tokens streamed out.

Every engine (scripted, bundled gpt-oss, vLLM, an OpenAI-compatible server) implements
:class:`Engine`. Structural typing: engines need no base class.

Example::

    async for event in engine.generate(EngineRequest(prompt_tokens=ids, stop_tokens=stops)):
        match event:
            case TokenDelta(token_ids=ids): ...
            case Finished(reason=reason, reused_tokens=reused): ...

Contract:
- ``generate`` yields zero or more :class:`TokenDelta` and then exactly one :class:`Finished`.
- When generation ends on a stop token, that token is the last one yielded (the Harmony parser
  needs ``<|call|>``/``<|return|>`` to close the message).
- Cancelling the consuming task (or closing the iterator) stops decoding and frees its resources.
- ``conversation_id`` lets an engine keep a conversation's cache between calls; prefix reuse is
  reported in ``Finished.reused_tokens`` (prompt tokens whose KV state was already computed).
- Infrastructure failures raise :class:`agent.errors.EngineError`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable


class FinishReason(enum.Enum):
    STOP = "stop"  # a stop token was produced
    LENGTH = "length"  # max_tokens (or the context) was reached
    ABORT = "abort"  # the request was cancelled


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")


@dataclass(frozen=True, slots=True)
class EngineRequest:
    prompt_tokens: Sequence[int]
    stop_tokens: frozenset[int] = frozenset()
    sampling: SamplingParams = field(default_factory=SamplingParams)
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class TokenDelta:
    token_ids: tuple[int, ...]
    kind: Literal["tokens"] = "tokens"


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    reused_tokens: int = 0
    kind: Literal["finished"] = "finished"


EngineEvent = TokenDelta | Finished


@runtime_checkable
class Engine(Protocol):
    """Anything that streams completion tokens for a prompt."""

    def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        """Stream completion tokens, then one :class:`Finished`."""
        ...

    async def aclose(self) -> None:
        """Release the engine's resources (model memory, HTTP clients, worker threads)."""
        ...
