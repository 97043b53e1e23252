"""Approvers: who settles an ``ask`` rule.

* :class:`TerminalApprover` shows the call on the terminal and asks the person
  (yes / no / always / never), in a worker thread so the event loop keeps running;
* :class:`AutoApprover` decides from the policy's ``approval`` section (batch runs): approve,
  deny, or approve the calls matching a pattern.

Any ``async def approver(call) -> bool | Approval`` works too (``Agent(..., approver=...)``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, TextIO

import anyio
from rich.console import Console
from rich.panel import Panel
from rich.prompt import Prompt
from rich.syntax import Syntax

from policies.config import Action, ApprovalPolicy, RedactionPolicy
from policies.redaction import Redactor
from policies.run import Approval

if TYPE_CHECKING:
    from toolkits.base import ToolCall

_CHOICES = {"y": Approval.YES, "n": Approval.NO, "a": Approval.ALWAYS, "v": Approval.NEVER}


class AutoApprover:
    """Decides without a person: ``approve_matching`` regexes (searched in
    ``"<recipient> <arguments>"``) approve; otherwise ``default`` (allow or deny) applies."""

    def __init__(self, policy: ApprovalPolicy) -> None:
        self.default = policy.default
        self.patterns = [re.compile(p) for p in policy.approve_matching]

    async def __call__(self, call: ToolCall) -> bool:
        text = f"{call.recipient} {call.arguments}"
        if any(p.search(text) for p in self.patterns):
            return True
        return self.default is Action.ALLOW


class TerminalApprover:
    """Asks the person at the terminal about each ``ask`` call.

    Answers: ``y`` yes (this call), ``n`` no, ``a`` always (every call to this tool in this
    run), ``v`` never. ``console`` and ``stream`` (where answers are read) default to the
    terminal; tests pass their own. ``redactor`` hides secrets in the arguments shown (by
    default the default redaction rules).
    Cancelling the run while a question is open leaves the thread waiting on input; the answer
    is then ignored.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        stream: TextIO | None = None,
        redactor: Redactor | None = None,
        max_chars: int = 4000,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.stream = stream
        self.redactor = redactor or Redactor(RedactionPolicy())
        self.max_chars = max_chars
        self._limiter = anyio.CapacityLimiter(1)  # one question on the terminal at a time

    async def __call__(self, call: ToolCall) -> Approval:
        return await anyio.to_thread.run_sync(
            self._ask, call, limiter=self._limiter, abandon_on_cancel=True
        )

    def _ask(self, call: ToolCall) -> Approval:
        self.console.print(self._panel(call))
        answer = Prompt.ask(
            "Allow this call? [y]es / [n]o / [a]lways for this tool / ne[v]er",
            console=self.console, choices=list(_CHOICES), default="n", show_choices=False,
            stream=self.stream,
        )
        return _CHOICES[answer]

    def _panel(self, call: ToolCall) -> Panel:
        text = call.arguments
        text = self.redactor.redact(text)
        if len(text) > self.max_chars:
            text = text[: self.max_chars] + f"\n… ({len(call.arguments) - self.max_chars} more)"
        lexer = "python" if call.namespace == "python" else "json" if _is_json(text) else "text"
        if lexer == "json":
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        body = Syntax(text, lexer, word_wrap=True) if text else "(no arguments)"
        return Panel(body, title=f"The model wants to call [bold]{call.recipient}[/bold]",
                     border_style="yellow")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
