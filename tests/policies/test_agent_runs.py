"""The policy in scripted runs: denials, budgets, approvals and redaction reach the model."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from agent import Agent, ScriptedEngine
from agent.events import Outcome, PolicyChecked, RunFinished, StopReason
from policies import Action, Approval, Budgets, Policy, RedactionPolicy
from toolkits.base import (
    RunContext,
    ToolCall,
    Toolkit,
    ToolNamespace,
    ToolReply,
    ToolSession,
    ToolSpec,
)

pytestmark = pytest.mark.anyio

FINAL = "<|channel|>final<|message|>done<|return|>"


def calls_to(recipient: str, *args: dict[str, object]) -> list[str]:
    return [
        f"<|channel|>commentary to={recipient} <|constrain|>json<|message|>{json.dumps(a)}<|call|>"
        for a in args
    ]


class Pages(Toolkit):
    """A toolkit that spends the browser_pages budget the way the browser does, one per open."""

    name = "pages"

    def __init__(self) -> None:
        self.opened: list[str] = []

    def namespace(self, policy=None) -> ToolNamespace:
        spec = ToolSpec("open", "Open a page.", {"type": "object",
                                                  "properties": {"url": {"type": "string"}}})
        return ToolNamespace("pages", "Pages.", (spec,), placement="system")

    def session(self, ctx: RunContext) -> ToolSession:
        kit = self

        class Session(ToolSession):
            async def call(self, call: ToolCall) -> ToolReply:
                ctx.policy.charge("browser_pages", 1)
                kit.opened.append(json.loads(call.arguments)["url"])
                return ToolReply("page text")

        return Session()


def weather_tools(seen: list[str]) -> list[object]:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"sunny in {city}"

    def deploy(env: str) -> str:
        """Deploy to an environment."""
        seen.append(f"deploy:{env}")
        return "deployed"

    return [get_weather, deploy]


async def run(agent: Agent) -> tuple[list[object], list[PolicyChecked]]:
    events = [e async for e in agent.stream("go")]
    return events, [e for e in events if isinstance(e, PolicyChecked)]


def result_of(events: Sequence[object]):
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    return finished.result


async def test_a_denied_call_reaches_the_model_and_the_run_goes_on(policy_logs) -> None:
    seen: list[str] = []
    engine = ScriptedEngine([
        *calls_to("functions.deploy", {"env": "prod"}),
        *calls_to("functions.get_weather", {"city": "Paris"}),
        FINAL,
    ])
    agent = Agent(engine, tools=weather_tools(seen),
                  policy=Policy(rules={"functions.deploy": Action.DENY}))
    events, checks = await run(agent)
    result = result_of(events)
    assert result.stop_reason is StopReason.FINAL and seen == ["Paris"]
    denied, allowed = result.tool_calls
    assert denied.outcome is Outcome.DENIED and "functions.deploy is not allowed" in denied.output
    assert allowed.outcome is Outcome.OK
    # The model saw the refusal as the tool's reply.
    tool_texts = [m.content[0].text for m in result.messages if m.author.role.value == "tool"]
    assert "functions.deploy is not allowed" in tool_texts[0]
    # One event and one log line per decision.
    assert [(c.call.recipient, c.decision.action, c.decision.rule) for c in checks] == [
        ("functions.deploy", Action.DENY, "functions.deploy"),
        ("functions.get_weather", Action.ALLOW, "default"),
    ]
    assert [e["decision"] for e in policy_logs if e["event"] == "policy_decision"] == ["deny", "allow"]


async def test_tool_call_budget_runs_out_mid_run() -> None:
    seen: list[str] = []
    engine = ScriptedEngine([
        *calls_to("functions.get_weather", {"city": "Paris"}, {"city": "Rome"}, {"city": "Oslo"}),
        FINAL,
    ])
    agent = Agent(engine, tools=weather_tools(seen), policy=Policy(budgets=Budgets(tool_calls=2)))
    result = result_of((await run(agent))[0])
    assert result.stop_reason is StopReason.FINAL and seen == ["Paris", "Rome"]
    last = result.tool_calls[-1]
    assert last.outcome is Outcome.DENIED
    assert "budget" in last.output and "answer with what you have" in last.output


async def test_a_budget_a_toolkit_charges_runs_out_mid_run() -> None:
    pages = Pages()
    engine = ScriptedEngine([*calls_to("pages.open", {"url": "a"}, {"url": "b"}), FINAL])
    agent = Agent(engine, [pages], policy=Policy(budgets=Budgets(browser_pages=1)))
    result = result_of((await run(agent))[0])
    assert result.stop_reason is StopReason.FINAL and pages.opened == ["a"]
    assert result.tool_calls[1].outcome is Outcome.DENIED
    assert "browser pages opened (limit 1, 0 left)" in result.tool_calls[1].output


@pytest.mark.parametrize(("answer", "ran"), [(True, ["deploy:prod"]), (False, [])])
async def test_ask_is_settled_by_the_agents_approver(answer: bool, ran: list[str]) -> None:
    seen: list[str] = []
    asked: list[str] = []

    async def approver(call: ToolCall) -> bool:
        asked.append(call.arguments)
        return answer

    engine = ScriptedEngine([*calls_to("functions.deploy", {"env": "prod"}), FINAL])
    agent = Agent(engine, tools=weather_tools(seen), approver=approver,
                  policy=Policy(rules={"functions.deploy": Action.ASK}))
    events, checks = await run(agent)
    assert seen == ran and asked == ['{"env": "prod"}']
    assert checks[0].decision.asked and checks[0].decision.allowed is answer
    assert result_of(events).stop_reason is StopReason.FINAL


async def test_always_answer_holds_for_the_rest_of_the_run() -> None:
    seen: list[str] = []
    asked = 0

    async def approver(call: ToolCall) -> Approval:
        nonlocal asked
        asked += 1
        return Approval.ALWAYS

    engine = ScriptedEngine([
        *calls_to("functions.get_weather", {"city": "A"}, {"city": "B"}, {"city": "C"}), FINAL,
    ])
    agent = Agent(engine, tools=weather_tools(seen), approver=approver,
                  policy=Policy.from_name("strict"))
    events, checks = await run(agent)
    assert seen == ["A", "B", "C"] and asked == 1
    assert [c.decision.remembered for c in checks] == [False, True, True]


async def test_strict_preset_in_a_batch_run_refuses_unapproved_calls() -> None:
    seen: list[str] = []
    engine = ScriptedEngine([*calls_to("functions.get_weather", {"city": "Paris"}), FINAL])
    agent = Agent(engine, tools=weather_tools(seen), policy=Policy.from_name("strict"))
    result = result_of((await run(agent))[0])
    assert seen == [] and result.tool_calls[0].outcome is Outcome.DENIED
    assert "needs approval" in result.tool_calls[0].output


async def test_secrets_in_tool_output_are_redacted_for_the_model(monkeypatch) -> None:
    monkeypatch.setenv("WEATHER_API_KEY", "wk-very-secret-1234")

    def leak(city: str) -> str:
        """Leaks a key."""
        return "key wk-very-secret-1234 and sk-abcdefghijklmnopqrstuvwxyz"

    engine = ScriptedEngine([*calls_to("functions.leak", {"city": "x"}), FINAL])
    agent = Agent(engine, tools=[leak], policy=Policy(redaction=RedactionPolicy()))
    result = result_of((await run(agent))[0])
    assert result.tool_calls[0].output == "key [REDACTED] and [REDACTED]"
    transcript = " ".join(getattr(c, "text", "") for m in result.messages for c in m.content)
    assert "wk-very-secret" not in transcript and "sk-abc" not in transcript
