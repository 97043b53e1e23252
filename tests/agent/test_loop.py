"""The agent loop through its public API, driven by the scripted engine."""

from __future__ import annotations

import json
from typing import Literal

import anyio
import pydantic
import pytest

from agent import Agent, HarmonyCodec, RunLimits, ScriptedEngine, StopReason, tool
from agent.events import (
    FormatError,
    MessageDone,
    Outcome,
    PolicyChecked,
    RunFinished,
    TextDelta,
    ToolFinished,
    ToolStarted,
    TurnFinished,
)
from policies import Policy
from toolkits.base import RunContext, ToolCall, Toolkit, ToolNamespace, ToolReply, ToolSession

pytestmark = pytest.mark.anyio


def call(recipient: str, args: object, channel: str = "commentary") -> str:
    body = args if isinstance(args, str) else json.dumps(args)
    return (f"<|channel|>{channel} to={recipient} <|constrain|>json<|message|>{body}<|call|>")


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


@tool(timeout_s=0.2)
async def slow() -> str:
    """Sleeps for a long time."""
    await anyio.sleep(30)
    return "never"


class Unit(pydantic.BaseModel):
    value: float
    unit: Literal["c", "f"] = "c"


@tool
def convert(t: Unit) -> dict[str, float]:
    """Convert a temperature."""
    return {"f": t.value * 9 / 5 + 32} if t.unit == "c" else {"c": (t.value - 32) * 5 / 9}


class Calc:
    """Calculator tools."""

    @tool
    def mul(self, a: float, b: float) -> float:
        """Multiply."""
        return a * b


async def test_direct_final_answer() -> None:
    result = await Agent(ScriptedEngine([final("Hello!")])).run("hi")
    assert result.stop_reason is StopReason.FINAL
    assert result.final_answer == "Hello!"
    assert result.tool_calls == []
    assert len(result.usage) == 1 and result.usage[0].completion_tokens > 0


async def test_chain_of_function_calls_and_usage() -> None:
    engine = ScriptedEngine([
        "<|channel|>analysis<|message|>Add first.<|end|><|start|>assistant"
        + call("functions.add", {"a": 2, "b": 3}),
        call("functions.add", {"a": 5, "b": 10}, channel="analysis"),
        call("calc.mul", {"a": 15, "b": 2}),
        call("functions.convert", {"value": 100}),
        final("30"),
    ])
    agent = Agent(engine, tools=[add, convert, Calc()])
    result = await agent.run("compute")
    assert [r.output for r in result.tool_calls] == ["5", "15", "30.0", '{"f": 212.0}']
    assert all(r.outcome is Outcome.OK for r in result.tool_calls)
    assert result.final_answer == "30"
    # every turn after the first reuses the whole previous prompt and completion
    for prev, cur in zip(result.usage, result.usage[1:], strict=False):
        assert cur.reused_tokens == prev.prompt_tokens + prev.completion_tokens
    # the tool reply goes back on the channel of the call
    replies = [m for m in result.messages if m.author.role.value == "tool"]
    assert [m.channel for m in replies] == ["commentary", "analysis", "commentary", "commentary"]
    prompt = agent.codec.decode(engine.requests[0].prompt_tokens)
    assert "## calc" in prompt and "type add = (_: {\n// The first.\na: number," in prompt


async def test_invalid_arguments_then_corrected() -> None:
    engine = ScriptedEngine([
        call("functions.add", {"a": 1, "b": "two"}),
        call("functions.add", "{not json"),
        call("functions.add", {"a": 1, "b": 2}),
        final("3"),
    ])
    result = await Agent(engine, tools=[add]).run("1+2")
    outcomes = [r.outcome for r in result.tool_calls]
    assert outcomes == [Outcome.ERROR, Outcome.ERROR, Outcome.OK]
    assert "b: Input should be a valid integer" in result.tool_calls[0].output
    assert "Invalid JSON" in result.tool_calls[1].output
    assert result.final_answer == "3"


async def test_unknown_recipient_lists_valid_tools() -> None:
    engine = ScriptedEngine([call("functions.nope", {}), call("browser.search", {"query": "x"}),
                             final("ok")])
    result = await Agent(engine, tools=[add]).run("x")
    assert [r.outcome for r in result.tool_calls] == [Outcome.UNKNOWN, Outcome.UNKNOWN]
    assert "functions.add" in result.tool_calls[0].output
    assert result.stop_reason is StopReason.FINAL


async def test_max_turns() -> None:
    engine = ScriptedEngine([call("functions.add", {"a": 1, "b": 1})] * 10)
    result = await Agent(engine, tools=[add], limits=RunLimits(max_turns=3)).run("loop")
    assert result.stop_reason is StopReason.MAX_TURNS
    assert len(result.tool_calls) == 3 and result.final_answer is None


async def test_consecutive_errors_end_the_run() -> None:
    engine = ScriptedEngine([call("functions.nope", {})] * 10)
    limits = RunLimits(max_consecutive_errors=4)
    result = await Agent(engine, tools=[add], limits=limits).run("x")
    assert result.stop_reason is StopReason.TOOL_ERRORS and len(result.tool_calls) == 4


async def test_completion_token_limit() -> None:
    engine = ScriptedEngine([call("functions.add", {"a": 1, "b": 1})] * 10)
    limits = RunLimits(max_completion_tokens=40)
    result = await Agent(engine, tools=[add], limits=limits).run("x")
    assert result.stop_reason is StopReason.MAX_TOKENS
    assert result.completion_tokens <= 40


async def test_tool_timeout_is_told_to_the_model() -> None:
    engine = ScriptedEngine([call("functions.slow", {}), final("gave up")])
    result = await Agent(engine, tools=[slow]).run("x")
    assert result.tool_calls[0].outcome is Outcome.TIMEOUT
    assert "timed out" in result.tool_calls[0].output
    assert result.final_answer == "gave up"


async def test_policy_timeout_applies_to_every_tool() -> None:
    @tool
    async def nap() -> str:
        """Naps."""
        await anyio.sleep(30)
        return ""

    policy = Policy(timeouts_s={"functions.nap": 0.1})
    result = await Agent(ScriptedEngine([call("functions.nap", {}), final("x")]), tools=[nap],
                         policy=policy).run("x")
    assert result.tool_calls[0].outcome is Outcome.TIMEOUT


async def test_deadline() -> None:
    @tool
    async def nap() -> str:
        """Naps."""
        await anyio.sleep(30)
        return ""

    agent = Agent(ScriptedEngine([call("functions.nap", {})]), tools=[nap],
                  limits=RunLimits(deadline_s=0.2))
    with anyio.fail_after(5):
        result = await agent.run("x")
    assert result.stop_reason is StopReason.DEADLINE


async def test_malformed_completion_is_fed_back_and_fixed() -> None:
    engine = ScriptedEngine([
        "<|channel|>thinking<|message|>hmm<|end|>",
        '<|channel|>commentary to=functions.add <|constrain|>json<|message|>{"a": 1'
        "<|channel|>x<|call|>",
        final("fine"),
    ])
    agent = Agent(engine, tools=[add])
    events = [e async for e in agent.stream("x")]
    errors = [e for e in events if isinstance(e, FormatError)]
    assert len(errors) == 2 and "unknown channel 'thinking'" in errors[0].reason
    result = events[-1].result  # type: ignore[union-attr]
    assert result.final_answer == "fine"
    prompt = agent.codec.decode(engine.requests[1].prompt_tokens)
    assert "<|start|>system<|message|>Your last message could not be read: unknown channel" \
           in prompt
    third = agent.codec.decode(engine.requests[2].prompt_tokens)
    # a broken tool call is answered as that tool, on its channel
    assert "<|start|>functions.add to=assistant<|channel|>commentary<|message|>Your last " \
           "message could not be read" in third


async def test_text_after_call_still_dispatches_the_call() -> None:
    engine = ScriptedEngine([call("functions.add", {"a": 1, "b": 1}) + "trailing", final("2")])
    result = await Agent(engine, tools=[add]).run("x")
    assert result.tool_calls[0].output == "2" and result.final_answer == "2"


async def test_output_is_capped_with_a_marker() -> None:
    @tool
    def big() -> str:
        """Lots of text."""
        return "x" * 5000

    limits = RunLimits(max_tool_output_chars=1000)
    result = await Agent(ScriptedEngine([call("functions.big", {}), final("ok")]), tools=[big],
                         limits=limits).run("x")
    out = result.tool_calls[0].output
    assert out.startswith("x" * 1000) and out.endswith("[output truncated: 4000 more characters]")


async def test_stream_event_order() -> None:
    engine = ScriptedEngine([call("functions.add", {"a": 1, "b": 1}), final("2")])
    kinds = [type(e) async for e in Agent(engine, tools=[add]).stream("x")]
    firsts = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] is not k]
    assert firsts == [TextDelta, TurnFinished, MessageDone, ToolStarted, PolicyChecked,
                      ToolFinished, TextDelta, TurnFinished, MessageDone, RunFinished]


class _Memo(Toolkit):
    """A stateful toolkit: each run's session remembers what that run stored."""

    name = "memo"

    def __init__(self) -> None:
        self.closed = 0
        self.started = 0

    def namespace(self, policy: object = None) -> ToolNamespace:
        return ToolNamespace("memo", "Per-run memory.", (), "system")

    def session(self, ctx: RunContext) -> ToolSession:
        return _MemoSession(self)


class _MemoSession(ToolSession):
    def __init__(self, kit: _Memo) -> None:
        self.kit = kit
        self.values: list[str] = []

    async def start(self) -> None:
        self.kit.started += 1

    async def aclose(self) -> None:
        self.kit.closed += 1

    async def call(self, call: ToolCall) -> ToolReply:
        if call.method == "sleep":
            await anyio.sleep(30)
        if call.method == "put":
            self.values.append(call.arguments)
            await anyio.sleep(0.01)
        return ToolReply(",".join(self.values))


async def test_fifty_concurrent_runs_share_nothing() -> None:
    kit = _Memo()

    def script(i: int) -> list[str]:
        return [call("memo.put", f"run{i}-a"), call("memo.put", f"run{i}-b"), final(f"done {i}")]

    results: dict[int, object] = {}

    async def one(i: int) -> None:
        agent = Agent(ScriptedEngine(script(i)), [kit])
        results[i] = await agent.run(f"task {i}", run_id=f"r{i}")

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    for i, r in results.items():
        assert [c.output for c in r.tool_calls] == [f"run{i}-a", f"run{i}-a,run{i}-b"]  # type: ignore[attr-defined]
        assert r.final_answer == f"done {i}"  # type: ignore[attr-defined]
    assert kit.started == kit.closed == 50


async def test_one_engine_serves_concurrent_runs() -> None:
    engine = ScriptedEngine([call("memo.put", "x"), final("ok")])
    kit = _Memo()
    async with Agent(engine, [kit]) as agent:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(agent.run, "task")
    assert kit.closed == 20


async def test_cancellation_mid_tool_closes_sessions() -> None:
    kit = _Memo()
    agent = Agent(ScriptedEngine([call("memo.sleep", "")]), [kit])
    started = anyio.Event()

    async def watch() -> None:
        async for event in agent.stream("x"):
            if isinstance(event, ToolStarted):
                started.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await started.wait()
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert kit.started == 1 and kit.closed == 1


async def test_user_errors_are_clear() -> None:
    from agent import UserError

    with pytest.raises(UserError, match="needs a type hint"):
        Agent(ScriptedEngine([]), tools=[lambda x: x])

    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(UserError, match="needs a type hint"):
        Agent(ScriptedEngine([]), tools=[untyped])
    with pytest.raises(UserError, match="pass an instance"):
        Agent(ScriptedEngine([]), tools=[Calc])


async def test_script_exhausted_is_an_engine_error() -> None:
    from agent import AgentRunError

    with pytest.raises(AgentRunError, match="add more completions"):
        await Agent(ScriptedEngine([call("functions.add", {"a": 1, "b": 1})]),
                    tools=[add]).run("x")


async def test_hung_sync_tool_cannot_hold_the_run() -> None:
    import time

    @tool(timeout_s=0.2)
    def stuck() -> str:
        """Blocks its thread."""
        time.sleep(3)
        return "late"

    with anyio.fail_after(2.5):
        result = await Agent(ScriptedEngine([call("functions.stuck", {}), final("moved on")]),
                             tools=[stuck]).run("x")
    assert result.tool_calls[0].outcome is Outcome.TIMEOUT
    assert result.final_answer == "moved on"


async def test_secrets_are_redacted_in_replies_and_events(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-value-0123456789"
    monkeypatch.setenv("DEMO_API_KEY", secret)

    @tool
    def leak(text: str) -> str:
        """Echoes its input and the secret."""
        return f"{text} / {secret}"

    engine = ScriptedEngine([call("functions.leak", {"text": secret}), final("done")])
    events = [e async for e in Agent(engine, tools=[leak]).stream("x")]
    started = next(e for e in events if isinstance(e, ToolStarted))
    finished = next(e for e in events if isinstance(e, ToolFinished))
    assert secret not in started.call.arguments and "[REDACTED]" in started.call.arguments
    assert secret not in finished.record.output
    prompt = engine.requests[-1].prompt_tokens
    assert secret not in HarmonyCodec().decode(list(prompt)).split("<|start|>functions.leak")[1]


async def test_leaving_the_stream_early_stops_the_run_quietly() -> None:
    kit = _Memo()
    agent = Agent(ScriptedEngine([call("memo.sleep", "")]), [kit])
    with anyio.fail_after(5):
        async for event in agent.stream("x"):
            if isinstance(event, ToolStarted):
                break
        await anyio.sleep(0.05)
    assert kit.closed == 1


async def test_stream_raises_engine_errors_plainly() -> None:
    from agent import AgentRunError

    with pytest.raises(AgentRunError, match="add more completions"):
        async for _ in Agent(ScriptedEngine([])).stream("x"):
            pass


async def test_files_seed_every_run(tmp_path: object) -> None:
    @tool
    def ls() -> str:
        """Lists nothing; the test reads the folder."""
        return "ok"

    agent = Agent(ScriptedEngine([final("ok")]), tools=[ls], files={"a/b.txt": "hello"})
    result = await agent.run("x", files={"c.bin": b"\x00\x01"})
    assert sorted(p.name for p in result.files) == ["b.txt", "c.bin"]
    from agent import UserError

    with pytest.raises(UserError, match="relative path"):
        await agent.run("x", files={"../escape": "no"})
