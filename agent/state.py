"""A run's state (what changes turn by turn) and dependencies (what it works with)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from agent.engine.base import Engine, SamplingParams
from agent.events import Event, ToolCallRecord, TurnUsage
from agent.harmony.codec import HarmonyCodec
from agent.harmony.transcript import Transcript
from policies.run import RunPolicy
from toolkits.base import RunContext, ToolSession

Emit = Callable[[Event], Awaitable[None]]


class RunLimits(BaseModel):
    """Limits that end a run cleanly, with a reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int = Field(default=50, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # the whole run
    max_tokens_per_turn: int = Field(default=4096, ge=1)
    deadline_s: float | None = Field(default=None, gt=0)
    max_consecutive_errors: int = Field(default=5, ge=1)
    max_tool_output_chars: int = Field(default=30_000, ge=100)


@dataclass(slots=True)
class Route:
    session: ToolSession
    namespace: str


@dataclass(slots=True)
class RunDeps:
    engine: Engine
    codec: HarmonyCodec
    policy: RunPolicy
    context: RunContext
    limits: RunLimits
    sampling: SamplingParams
    routes: dict[str, Route]  # recipient or namespace -> session
    emit: Emit


@dataclass(slots=True)
class RunState:
    transcript: Transcript
    started: float = field(default_factory=time.monotonic)
    turn: int = 0
    completion_tokens: int = 0
    consecutive_errors: int = 0
    final_answer: str | None = None
    usage: list[TurnUsage] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started
