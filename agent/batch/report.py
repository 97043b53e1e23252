"""What a batch came to: counts by status, pass rate, tool usage, tokens and time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "no_answer", "error", "timeout")


@dataclass(slots=True)
class Summary:
    total: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    scored: int = 0
    passed: int = 0
    score_sum: float = 0.0
    tools: Counter[str] = field(default_factory=Counter)
    tool_errors: Counter[str] = field(default_factory=Counter)
    tool_time_s: float = 0.0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    task_time_s: float = 0.0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.scored if self.scored else None

    @property
    def failed(self) -> int:
        return self.statuses["error"] + self.statuses["timeout"] + self.statuses["no_answer"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total, "statuses": dict(self.statuses), "scored": self.scored,
            "passed": self.passed, "pass_rate": self.pass_rate,
            "mean_score": self.score_sum / self.scored if self.scored else None,
            "tool_calls": dict(self.tools), "tool_errors": dict(self.tool_errors),
            "tool_time_s": round(self.tool_time_s, 3), "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens, "completion_tokens": self.completion_tokens,
            "task_time_s": round(self.task_time_s, 3),
        }


def summarize(records: Iterable[dict[str, Any]], ids: set[str] | None = None) -> Summary:
    """Totals over result records (only those whose id is in ``ids``, when given)."""
    s = Summary()
    for r in records:
        if ids is not None and r.get("id") not in ids:
            continue
        s.total += 1
        s.statuses[r.get("status", "error")] += 1
        if r.get("passed") is not None:
            s.scored += 1
            s.passed += bool(r["passed"])
            s.score_sum += float(r.get("score") or 0.0)
        for call in r.get("tool_calls", []):
            s.tools[call.get("recipient", "?")] += 1
            if call.get("outcome") != "ok":
                s.tool_errors[call.get("recipient", "?")] += 1
        usage = r.get("usage") or {}
        s.prompt_tokens += usage.get("prompt_tokens", 0)
        s.reused_tokens += usage.get("reused_tokens", 0)
        s.completion_tokens += usage.get("completion_tokens", 0)
        timings = r.get("timings") or {}
        s.tool_time_s += timings.get("tool_time_s", 0.0)
        s.task_time_s += timings.get("duration_s", 0.0)
    return s
