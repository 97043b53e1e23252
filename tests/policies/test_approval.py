"""The terminal approver: shows the call, reads y/n/a/v, runs in a worker thread."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from policies import Action, Approval, Policy, RedactionPolicy, Redactor, RunPolicy
from policies.approval import TerminalApprover
from toolkits.base import ToolCall

pytestmark = pytest.mark.anyio

CALL = ToolCall("functions.deploy", "functions", "deploy", '{"env": "prod", "token": "tok-999999"}')


def approver(answers: str) -> tuple[TerminalApprover, io.StringIO]:
    screen = io.StringIO()
    console = Console(file=screen, width=100, force_terminal=False)
    redactor = Redactor(RedactionPolicy(env_vars=[], patterns=[r"tok-\d+"]), environ={})
    return TerminalApprover(console, stream=io.StringIO(answers), redactor=redactor), screen


@pytest.mark.parametrize(
    ("typed", "answer"),
    [("y\n", Approval.YES), ("n\n", Approval.NO), ("a\n", Approval.ALWAYS),
     ("v\n", Approval.NEVER), ("\n", Approval.NO), ("maybe\ny\n", Approval.YES)],
)
async def test_answers(typed: str, answer: Approval) -> None:
    ask, _ = approver(typed)
    assert await ask(CALL) is answer


async def test_the_call_is_shown_with_secrets_hidden() -> None:
    ask, screen = approver("y\n")
    await ask(CALL)
    shown = screen.getvalue()
    assert "functions.deploy" in shown and '"env": "prod"' in shown
    assert "tok-999999" not in shown and "[REDACTED]" in shown


async def test_always_through_the_run_policy_asks_once() -> None:
    ask, screen = approver("a\n")
    rp = RunPolicy(Policy(rules={"functions.deploy": Action.ASK}), ask)
    assert (await rp.authorize(CALL)).allowed
    assert (await rp.authorize(CALL)).allowed
    assert screen.getvalue().count("functions.deploy") == 1
