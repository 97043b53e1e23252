"""What a run produces: typed events while it runs, a :class:`RunResult` at the end.

Consumers ``match`` on events::

    async for event in agent.stream(task):
        match event:
            case TextDelta(channel="final", text=text): ...
            case ToolFinished(record=record): ...
            case RunFinished(result=result): ...
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import openai_harmony as oh

from agent.harmony.parser import ParsedMessage
from toolkits.base import ToolCall

if TYPE_CHECKING:  # policies import agent.errors; keep the import graph one-way at run time
    from policies.run import PolicyDecision


class StopReason(enum.StrEnum):
    FINAL = "final"  # the model answered on the final channel
    MAX_TURNS = "max_turns"
    MAX_TOKENS = "max_tokens"  # the run's completion-token limit
    DEADLINE = "deadline"
    TOOL_ERRORS = "tool_errors"  # too many consecutive tool errors
    NO_ACTION = "no_action"  # the engine stopped without a message to act on
    CANCELLED = "cancelled"


class Outcome(enum.StrEnum):
    OK = "ok"
    ERROR = "error"  # the tool raised a ToolError (the model was told)
    DENIED = "denied"  # the policy refused the call
    TIMEOUT = "timeout"
    UNKNOWN = "unknown_recipient"


@dataclass(frozen=True, slots=True)
class TurnUsage:
    turn: int
    prompt_tokens: int
    reused_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    call: ToolCall
    outcome: Outcome
    output: str
    started_at: float  # seconds since the run started
    duration_s: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RunResult:
    run_id: str
    stop_reason: StopReason
    final_answer: str | None
    messages: list[oh.Message]
    tool_calls: list[ToolCallRecord]
    usage: list[TurnUsage]
    files_dir: Path | None = None
    duration_s: float = 0.0

    @property
    def completion_tokens(self) -> int:
        return sum(u.completion_tokens for u in self.usage)

    @property
    def prompt_tokens(self) -> int:
        return sum(u.prompt_tokens for u in self.usage)

    @property
    def reused_tokens(self) -> int:
        return sum(u.reused_tokens for u in self.usage)

    @property
    def files(self) -> list[Path]:
        """Files the tools wrote into the run's folder (``/mnt/data`` in the sandbox)."""
        if self.files_dir is None or not self.files_dir.is_dir():
            return []
        return sorted(p for p in self.files_dir.rglob("*") if p.is_file())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stop_reason": self.stop_reason.value,
            "final_answer": self.final_answer,
            "messages": [json.loads(m.to_json()) for m in self.messages],
            "tool_calls": [
                {**asdict(r.call), "outcome": r.outcome.value, "output": r.output,
                 "started_at": r.started_at, "duration_s": r.duration_s,
                 "metadata": r.metadata}
                for r in self.tool_calls
            ],
            "usage": [asdict(u) for u in self.usage],
            "files": [str(p) for p in self.files],
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True, slots=True)
class TextDelta:
    channel: str
    recipient: str | None
    text: str
    kind: Literal["delta"] = "delta"


@dataclass(frozen=True, slots=True)
class MessageDone:
    message: ParsedMessage
    kind: Literal["message"] = "message"


@dataclass(frozen=True, slots=True)
class FormatError:
    """The model's completion was not valid Harmony; ``reason`` was sent back to it."""

    reason: str
    raw_text: str
    kind: Literal["format_error"] = "format_error"


@dataclass(frozen=True, slots=True)
class PolicyChecked:
    call: ToolCall
    decision: PolicyDecision
    kind: Literal["policy"] = "policy"


@dataclass(frozen=True, slots=True)
class ToolStarted:
    call: ToolCall
    kind: Literal["tool_started"] = "tool_started"


@dataclass(frozen=True, slots=True)
class ToolFinished:
    record: ToolCallRecord
    kind: Literal["tool_finished"] = "tool_finished"


@dataclass(frozen=True, slots=True)
class TurnFinished:
    usage: TurnUsage
    kind: Literal["turn"] = "turn"


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: RunResult
    kind: Literal["finished"] = "finished"


Event = (
    TextDelta | MessageDone | FormatError | PolicyChecked | ToolStarted | ToolFinished
    | TurnFinished | RunFinished
)
