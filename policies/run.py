"""A policy applied to one run: rule decisions, budgets, approvals, redaction.

The loop calls :meth:`RunPolicy.authorize` before every dispatch and :meth:`RunPolicy.redact` on
everything the model or a log will see. Toolkits spend what only they can measure (pages opened,
CPU seconds, bytes written): :meth:`RunPolicy.charge` before the work (raises
:class:`agent.errors.PolicyDenied` when it would not fit), :meth:`RunPolicy.record` after work
whose cost is known only at the end (it never raises; the next :meth:`RunPolicy.check` does).

Example::

    rp = RunPolicy(Policy.load("strict"), approver=TerminalApprover())
    decision = await rp.authorize(call)        # PolicyDecision(action, rule, reason, asked)
    rp.charge("browser_pages", 1)              # in the browser toolkit, per page opened
"""

from __future__ import annotations

import enum
import fnmatch
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import structlog

from agent.errors import PolicyDenied
from policies import network, paths
from policies.config import Action, Policy
from policies.redaction import Redactor

if TYPE_CHECKING:
    from toolkits.base import ToolCall

log = structlog.get_logger(__name__)


class Approval(enum.StrEnum):
    """An approver's answer. ``ALWAYS``/``NEVER`` hold for the same recipient for the whole run."""

    YES = "yes"
    NO = "no"
    ALWAYS = "always"
    NEVER = "never"


class Approver(Protocol):
    """An async hook deciding ``ask`` rules. True/False answer for this call only."""

    async def __call__(self, call: ToolCall, /) -> bool | Approval: ...


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    action: Action  # ALLOW or DENY once an ``ask`` is settled
    rule: str  # the rule key that matched, or "default" / "budget.<name>"
    reason: str
    asked: bool = False  # an approver (or the batch approval config) settled an ``ask``
    remembered: bool = False  # settled by an earlier "always"/"never" answer

    @property
    def allowed(self) -> bool:
        return self.action is Action.ALLOW


_CHARGEABLE = {
    "browser_pages": "browser pages opened",
    "python_cpu_seconds": "python CPU seconds",
    "python_wall_seconds": "python wall-clock seconds",
    "apply_patch_bytes": "bytes written by apply_patch",
    "completion_tokens": "completion tokens",
}


def rule_for(rules: dict[str, Action] | dict[str, float] | dict[str, int],
             recipient: str) -> str | None:
    """The most specific rule key matching ``recipient``.

    An exact key wins; otherwise the matching key with the most literal characters, where a key
    matches as a glob (``functions.*``) or as a namespace prefix (``browser`` for ``browser.open``).
    """
    if recipient in rules:
        return recipient
    best: str | None = None
    for key in rules:
        prefix = recipient.startswith(key + ".")
        if (prefix or fnmatch.fnmatchcase(recipient, key)) and (
            best is None or len(key.replace("*", "")) > len(best.replace("*", ""))
        ):
            best = key
    return best


class RunPolicy:
    """The per-run state of a :class:`Policy`. Not shared between runs.

    ``approver`` settles ``ask`` rules; without one, the policy's ``approval`` section decides
    (batch runs). ``calls`` counts allowed calls per recipient (``"*"``: all); ``spent`` holds
    what each chargeable budget has used.
    """

    def __init__(self, config: Policy | None = None, approver: Approver | None = None) -> None:
        from policies.approval import AutoApprover

        self.config = config or Policy()
        self.approver: Approver = approver or AutoApprover(self.config.approval)
        self.calls: Counter[str] = Counter()
        self.spent: defaultdict[str, float] = defaultdict(float)
        self.redactor = Redactor(self.config.redaction)
        self._remembered: dict[str, bool] = {}
        self._ask_lock = anyio.Lock()  # one question at a time; answers may settle the next

    # -- deciding calls -----------------------------------------------------------------------

    async def authorize(self, call: ToolCall) -> PolicyDecision:
        """Decide one call: rules, then call budgets, then (for ``ask``) the approver.

        Counts the call when allowed; logs one ``policy_decision`` line. Never raises for a
        refusal: the decision's ``reason`` is written for the model.
        """
        decision = await self._decide(call)
        log.info(
            "policy_decision", recipient=call.recipient, call_id=call.call_id,
            decision=decision.action.value, rule=decision.rule, asked=decision.asked,
            remembered=decision.remembered, reason=self.redact(decision.reason),
        )
        return decision

    async def _decide(self, call: ToolCall) -> PolicyDecision:
        key = rule_for(self.config.rules, call.recipient)
        action = self.config.rules[key] if key else self.config.default
        rule = key or "default"
        if action is Action.DENY:
            where = "" if key else " (tools the policy does not name are denied)"
            return PolicyDecision(
                Action.DENY, rule,
                f"{call.recipient} is not allowed in this run{where}; use another tool or "
                "answer without it",
            )
        budget = self._call_budget_exceeded(call.recipient)
        if budget is not None:
            return budget
        # Reserve the call now so concurrent calls cannot overrun a budget while one waits.
        self.calls[call.recipient] += 1
        self.calls["*"] += 1
        if action is Action.ASK:
            decision: PolicyDecision | None = None
            try:
                decision = await self._ask(call, rule)
            finally:  # refused, or the approver failed or was cancelled: give the call back
                if decision is None or not decision.allowed:
                    self.calls[call.recipient] -= 1
                    self.calls["*"] -= 1
            return decision
        return PolicyDecision(Action.ALLOW, rule, "allowed")

    async def _ask(self, call: ToolCall, rule: str) -> PolicyDecision:
        async with self._ask_lock:
            if call.recipient in self._remembered:
                ok = self._remembered[call.recipient]
                action = Action.ALLOW if ok else Action.DENY
                why = "approved" if ok else "refused"
                return PolicyDecision(action, rule, f"{why} for every {call.recipient} call of "
                                      "this run", asked=True, remembered=True)
            answer = await self.approver(call)
        if isinstance(answer, bool):
            answer = Approval.YES if answer else Approval.NO
        if self.config.approval.remember and answer in (Approval.ALWAYS, Approval.NEVER):
            self._remembered[call.recipient] = answer is Approval.ALWAYS
        if answer in (Approval.YES, Approval.ALWAYS):
            return PolicyDecision(Action.ALLOW, rule, f"approved ({answer.value})", asked=True)
        return PolicyDecision(
            Action.DENY, rule,
            f"the call needs approval and was refused ({answer.value}); "
            + ("do not call it again in this run" if answer is Approval.NEVER
               else "try another way or ask the user"),
            asked=True,
        )

    def _call_budget_exceeded(self, recipient: str) -> PolicyDecision | None:
        b = self.config.budgets
        if b.tool_calls is not None and self.calls["*"] >= b.tool_calls:
            return PolicyDecision(
                Action.DENY, "budget.tool_calls",
                f"the tool call budget of this run ({b.tool_calls} calls) is spent; "
                "no more tool calls are possible: answer with what you have",
            )
        key = rule_for(b.calls_per_tool, recipient)
        if key is not None and self._calls_matching(key) >= b.calls_per_tool[key]:
            return PolicyDecision(
                Action.DENY, f"budget.calls_per_tool.{key}",
                f"the budget for {key} ({b.calls_per_tool[key]} calls) is spent; "
                f"other tools remain available ({self.describe_remaining()})",
            )
        return None

    def _calls_matching(self, key: str) -> int:
        """Calls so far under one ``calls_per_tool`` key (a namespace key counts its methods)."""
        return sum(
            n for r, n in self.calls.items()
            if r != "*" and rule_for(self.config.budgets.calls_per_tool, r) == key
        )

    # -- budgets toolkits spend ---------------------------------------------------------------

    def charge(self, budget: str, amount: float) -> None:
        """Spend ``amount`` of a budget before doing the work.

        Raises:
            PolicyDenied: the amount does not fit in what is left (nothing is spent then).
            ValueError: an unknown budget name (a programming error).
        """
        limit = self._limit(budget)
        if limit is not None and self.spent[budget] + amount > limit:
            raise self._exhausted(budget, limit)
        self.spent[budget] += amount

    def record(self, budget: str, amount: float) -> None:
        """Spend ``amount`` measured after the work (CPU seconds); never raises for the limit."""
        self._limit(budget)
        self.spent[budget] += amount

    def check(self, budget: str) -> None:
        """Raise PolicyDenied if nothing of ``budget`` is left (before starting metered work)."""
        limit = self._limit(budget)
        if limit is not None and self.spent[budget] >= limit:
            raise self._exhausted(budget, limit)

    def remaining(self, budget: str) -> float | None:
        """What is left of a budget; None when unlimited."""
        limit = self._limit(budget)
        return None if limit is None else max(0, limit - self.spent[budget])

    def describe_remaining(self) -> str:
        """What is still possible, for messages to the model (``12 tool calls, 3 browser pages``)."""
        parts = []
        if self.config.budgets.tool_calls is not None:
            parts.append(f"{max(0, self.config.budgets.tool_calls - self.calls['*'])} tool calls")
        for name, label in _CHARGEABLE.items():
            left = self.remaining(name)
            if left is not None:
                parts.append(f"{left:g} {label}")
        return "left: " + ", ".join(parts) if parts else "no other budget is limited"

    def _limit(self, budget: str) -> float | None:
        if budget not in _CHARGEABLE:
            raise ValueError(f"unknown budget {budget!r}; known: {sorted(_CHARGEABLE)}")
        limit: float | None = getattr(self.config.budgets, budget)
        return limit

    def _exhausted(self, budget: str, limit: float) -> PolicyDenied:
        left = max(0, limit - self.spent[budget])
        log.info("policy_budget_exhausted", budget=budget, limit=limit, left=left)
        return PolicyDenied(
            f"budget exhausted: {_CHARGEABLE[budget]} (limit {limit:g}, {left:g} left); "
            f"try another way or answer with what you have ({self.describe_remaining()})",
            rule=f"budget.{budget}",
        )

    # -- checks toolkits make on the same object ---------------------------------------------

    def check_url(self, url: str) -> None:
        """Browser: scheme and domain of ``url`` (each redirect hop and sub-request too).

        Raises:
            PolicyDenied: see :func:`policies.network.check_url`.
        """
        with self._logged("browser", url):
            network.check_url(url, self.config.browser)

    async def check_host(self, host: str, port: int) -> list[str]:
        """Browser: resolve ``host`` and refuse it if any address is refused; the addresses."""
        with self._logged("browser", host):
            return await network.resolve_and_check(host, port, self.config.browser)

    def check_path(self, root: Path, relpath: str) -> Path:
        """apply_patch: the real path of ``relpath`` under ``root`` (symlinks followed), if allowed.

        Raises:
            PolicyDenied: see :func:`policies.paths.resolve_in_workspace`.
        """
        with self._logged("apply_patch", relpath):
            return paths.resolve_in_workspace(root, relpath, self.config.apply_patch)

    @contextmanager
    def _logged(self, toolkit: str, target: str) -> Iterator[None]:
        try:
            yield
        except PolicyDenied as exc:
            log.info("policy_denied", toolkit=toolkit, target=self.redact(target)[:200],
                     rule=exc.rule, reason=self.redact(exc.message))
            raise

    # -- time and secrets ---------------------------------------------------------------------

    def timeout_for(self, recipient: str) -> float:
        """Seconds one call to ``recipient`` may take (``timeouts_s`` pattern, else default)."""
        key = rule_for(self.config.timeouts_s, recipient)
        return self.config.timeouts_s[key] if key else self.config.default_timeout_s

    def redact(self, text: str) -> str:
        """``text`` with secret values (env vars, key patterns) replaced."""
        return self.redactor.redact(text)
