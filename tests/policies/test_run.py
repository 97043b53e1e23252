"""RunPolicy: rules, ask/approvals, budgets, timeouts and the structlog line of each decision."""

from __future__ import annotations

import anyio
import pytest

from agent.errors import PolicyDenied
from policies import (
    Action,
    Approval,
    ApprovalPolicy,
    Budgets,
    Policy,
    PolicyDecision,
    RunPolicy,
)
from policies.run import rule_for
from toolkits.base import ToolCall

pytestmark = pytest.mark.anyio


def call(recipient: str, arguments: str = "{}") -> ToolCall:
    namespace, _, method = recipient.partition(".")
    return ToolCall(recipient, namespace, method or None, arguments, call_id="c1")


class Scripted:
    """An approver answering from a list, recording what it was asked."""

    def __init__(self, *answers: bool | Approval) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, c: ToolCall) -> bool | Approval:
        self.asked.append(c.recipient)
        return self.answers.pop(0)


# --- rules ------------------------------------------------------------------------------------


def test_most_specific_rule_wins() -> None:
    rules = {"browser": Action.ASK, "browser.open": Action.DENY, "functions.*": Action.ALLOW,
             "functions.apply_patch": Action.ASK, "*": Action.DENY}
    assert rule_for(rules, "browser.open") == "browser.open"
    assert rule_for(rules, "browser.search") == "browser"
    assert rule_for(rules, "functions.get_weather") == "functions.*"
    assert rule_for(rules, "functions.apply_patch") == "functions.apply_patch"
    assert rule_for(rules, "python") == "*"
    assert rule_for({"browser": Action.DENY}, "browserx.open") is None


async def test_deny_rule_refuses_with_rule_and_reason() -> None:
    rp = RunPolicy(Policy(rules={"browser": Action.DENY}))
    decision = await rp.authorize(call("browser.open"))
    assert decision == PolicyDecision(Action.DENY, "browser", decision.reason)
    assert "browser.open is not allowed" in decision.reason
    assert rp.calls["*"] == 0  # refused calls are not counted


async def test_default_action_applies_when_no_rule_matches() -> None:
    rp = RunPolicy(Policy(default=Action.DENY, rules={"python": Action.ALLOW}))
    assert (await rp.authorize(call("python"))).allowed
    decision = await rp.authorize(call("functions.rm"))
    assert not decision.allowed and decision.rule == "default"
    assert "does not name" in decision.reason


async def test_every_decision_is_one_structlog_line(policy_logs) -> None:
    rp = RunPolicy(Policy(rules={"python": Action.DENY}))
    await rp.authorize(call("python"))
    await rp.authorize(call("functions.ok"))
    lines = [e for e in policy_logs if e["event"] == "policy_decision"]
    assert [(e["recipient"], e["decision"], e["rule"]) for e in lines] == [
        ("python", "deny", "python"), ("functions.ok", "allow", "default"),
    ]
    assert all(e["reason"] and e["call_id"] == "c1" for e in lines)


# --- ask ----------------------------------------------------------------------------------------


async def test_ask_approved_and_denied_by_the_approver() -> None:
    approver = Scripted(True, False)
    rp = RunPolicy(Policy(rules={"python": Action.ASK}), approver)
    first, second = await rp.authorize(call("python")), await rp.authorize(call("python"))
    assert first.allowed and first.asked
    assert not second.allowed and second.asked and "refused" in second.reason
    assert approver.asked == ["python", "python"]
    assert rp.calls["python"] == 1


async def test_always_and_never_are_remembered_for_the_rest_of_the_run() -> None:
    approver = Scripted(Approval.ALWAYS, Approval.NEVER)
    rp = RunPolicy(Policy(default=Action.ASK), approver)
    for _ in range(3):
        assert (await rp.authorize(call("python"))).allowed
    for _ in range(3):
        assert not (await rp.authorize(call("browser.open"))).allowed
    assert approver.asked == ["python", "browser.open"]
    again = await rp.authorize(call("python"))
    assert again.remembered and again.asked


async def test_remember_off_asks_every_time() -> None:
    approver = Scripted(Approval.ALWAYS, Approval.NO)
    rp = RunPolicy(Policy(default=Action.ASK, approval=ApprovalPolicy(remember=False)), approver)
    assert (await rp.authorize(call("python"))).allowed
    assert not (await rp.authorize(call("python"))).allowed
    assert approver.asked == ["python", "python"]


@pytest.mark.parametrize(
    ("approval", "arguments", "allowed"),
    [
        (ApprovalPolicy(default=Action.DENY), "print(1)", False),
        (ApprovalPolicy(default=Action.ALLOW), "print(1)", True),
        (ApprovalPolicy(approve_matching=[r"^python print\("]), "print(1)", True),
        (ApprovalPolicy(approve_matching=[r"^python print\("]), "import os", False),
    ],
)
async def test_batch_runs_decide_ask_from_config(approval, arguments: str, allowed: bool) -> None:
    rp = RunPolicy(Policy(rules={"python": Action.ASK}, approval=approval))
    decision = await rp.authorize(call("python", arguments))
    assert decision.allowed is allowed and decision.asked


async def test_concurrent_asks_are_serialised_and_share_an_always() -> None:
    asked = 0

    async def slow(c: ToolCall) -> Approval:
        nonlocal asked
        asked += 1
        await anyio.sleep(0.01)
        return Approval.ALWAYS

    rp = RunPolicy(Policy(default=Action.ASK), slow)
    results: list[PolicyDecision] = []

    async def one() -> None:
        results.append(await rp.authorize(call("python")))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert asked == 1 and all(d.allowed for d in results)


# --- budgets ------------------------------------------------------------------------------------


async def test_tool_call_budget_runs_out_with_a_message() -> None:
    rp = RunPolicy(Policy(budgets=Budgets(tool_calls=2)))
    assert (await rp.authorize(call("python"))).allowed
    assert (await rp.authorize(call("browser.open"))).allowed
    decision = await rp.authorize(call("python"))
    assert not decision.allowed and decision.rule == "budget.tool_calls"
    assert "2 calls" in decision.reason and "answer with what you have" in decision.reason


async def test_calls_per_tool_counts_a_namespace_and_leaves_others_open() -> None:
    rp = RunPolicy(Policy(budgets=Budgets(calls_per_tool={"browser": 2}, tool_calls=10)))
    assert (await rp.authorize(call("browser.search"))).allowed
    assert (await rp.authorize(call("browser.open"))).allowed
    decision = await rp.authorize(call("browser.find"))
    assert not decision.allowed and decision.rule == "budget.calls_per_tool.browser"
    assert "other tools remain available" in decision.reason and "8 tool calls" in decision.reason
    assert (await rp.authorize(call("python"))).allowed


async def test_a_refused_ask_gives_its_reserved_call_back() -> None:
    rp = RunPolicy(Policy(default=Action.ASK, budgets=Budgets(tool_calls=1)), Scripted(False, True))
    assert not (await rp.authorize(call("python"))).allowed
    assert (await rp.authorize(call("python"))).allowed


def test_charge_refuses_what_does_not_fit_and_says_what_is_left() -> None:
    rp = RunPolicy(Policy(budgets=Budgets(browser_pages=2, tool_calls=5)))
    rp.charge("browser_pages", 1)
    rp.charge("browser_pages", 1)
    with pytest.raises(PolicyDenied) as info:
        rp.charge("browser_pages", 1)
    assert info.value.rule == "budget.browser_pages"
    assert "browser pages opened (limit 2, 0 left)" in info.value.message
    assert "5 tool calls" in info.value.message
    assert rp.remaining("browser_pages") == 0


def test_record_spends_after_the_fact_and_check_refuses_the_next_call() -> None:
    rp = RunPolicy(Policy(budgets=Budgets(python_cpu_seconds=1.0)))
    rp.check("python_cpu_seconds")
    rp.record("python_cpu_seconds", 1.5)  # the call that overran still returns its output
    assert rp.remaining("python_cpu_seconds") == 0
    with pytest.raises(PolicyDenied, match="python CPU seconds"):
        rp.check("python_cpu_seconds")


def test_unlimited_budgets_and_unknown_names() -> None:
    rp = RunPolicy(Policy(budgets=Budgets(completion_tokens=None)))
    assert rp.remaining("completion_tokens") is None
    rp.charge("completion_tokens", 10**9)
    with pytest.raises(ValueError, match="unknown budget"):
        rp.charge("pages", 1)


def test_timeouts_per_recipient_pattern() -> None:
    rp = RunPolicy(Policy(timeouts_s={"browser": 30, "python": 5}, default_timeout_s=60))
    assert rp.timeout_for("browser.open") == 30
    assert rp.timeout_for("python") == 5
    assert rp.timeout_for("functions.x") == 60


# --- presets in action ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "recipient", "allowed"),
    [
        ("strict", "python", False),  # ask, and a batch run without approver refuses
        ("strict", "browser.find", True),
        ("default", "python", True),
        ("default", "functions.apply_patch", True),
        ("permissive", "browser.open", True),
        ("offline", "browser.open", False),
        ("offline", "python", True),
    ],
)
async def test_presets_decide_calls(preset: str, recipient: str, allowed: bool) -> None:
    assert (await RunPolicy(Policy.from_name(preset)).authorize(call(recipient))).allowed is allowed


def test_presets_give_toolkits_their_network_rules() -> None:
    local = "http://127.0.0.1:8000/"
    RunPolicy(Policy.from_name("permissive")).check_url(local)
    for name in ("strict", "default", "offline"):
        with pytest.raises(PolicyDenied):
            RunPolicy(Policy.from_name(name)).check_url(local)
    with pytest.raises(PolicyDenied, match="deny_domains"):
        RunPolicy(Policy.from_name("offline")).check_url("https://example.com/")
    with pytest.raises(PolicyDenied, match="http: scheme"):
        RunPolicy(Policy.from_name("strict")).check_url("http://example.com/")


# --- toolkit checks through the run policy ----------------------------------------------------


async def test_toolkit_checks_raise_and_log(policy_logs, tmp_path) -> None:
    rp = RunPolicy(Policy())
    with pytest.raises(PolicyDenied):
        rp.check_url("file:///etc/passwd")
    with pytest.raises(PolicyDenied):
        await rp.check_host("localhost", 80)
    with pytest.raises(PolicyDenied):
        rp.check_path(tmp_path, ".git/config")
    assert rp.check_path(tmp_path, "src/a.py") == (tmp_path / "src" / "a.py").resolve()
    denials = [e for e in policy_logs if e["event"] == "policy_denied"]
    assert [(e["toolkit"], e["rule"]) for e in denials] == [
        ("browser", "browser.schemes"), ("browser", "browser.allow_private"),
        ("apply_patch", "apply_patch.paths"),
    ]


async def test_a_failing_approver_gives_the_reserved_call_back() -> None:
    async def broken(c: ToolCall) -> bool:
        raise RuntimeError("terminal gone")

    rp = RunPolicy(Policy(default=Action.ASK, budgets=Budgets(tool_calls=1)), broken)
    with pytest.raises(RuntimeError):
        await rp.authorize(call("python"))
    assert rp.calls["*"] == 0
