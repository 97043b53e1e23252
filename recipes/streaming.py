"""Streaming events: watch a run as it happens with ``agent.stream`` and ``match``.

    python recipes/streaming.py                      # prints each event as it comes
    agent run recipes/streaming.py                   # the CLI's own rendering of the same run

Every event is a frozen dataclass with a ``kind`` tag; ``RunFinished`` comes last and carries
the :class:`RunResult`.
"""

from __future__ import annotations

import sys

import anyio

from agent import Agent, Engine, tool
from agent.events import (
    FormatError,
    MessageDone,
    PolicyChecked,
    RunFinished,
    TextDelta,
    ToolFinished,
    ToolStarted,
    TurnFinished,
)

TASK = "What is 17 * 23? Check it with the calculator."


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def build_agent(engine: Engine) -> Agent:
    return Agent(engine, tools=[multiply])


SCRIPT = [
    "<|channel|>analysis<|message|>17 * 23 is about 400; let me check.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.multiply <|constrain|>json"
    '<|message|>{"a": 17, "b": 23}<|call|>',
    "<|channel|>final<|message|>17 × 23 = 391.<|return|>",
]


async def watch(agent: Agent, task: str) -> int:
    code = 1
    async for event in agent.stream(task):  # read to the end: RunFinished is the last event
        match event:
            case TextDelta(channel="analysis", text=text):
                print(text, end="", flush=True)
            case TextDelta():
                pass  # tool arguments and the final answer arrive whole below
            case MessageDone(message=message) if message.channel == "final":
                print(f"\n[answer] {message.text}")
            case MessageDone() | PolicyChecked() | FormatError():
                pass
            case ToolStarted(call=call):
                print(f"\n[tool] {call.recipient}({call.arguments})")
            case ToolFinished(record=record):
                print(f"[tool] -> {record.output} ({record.outcome.value})")
            case TurnFinished(usage=usage):
                print(f"\n[turn {usage.turn}] {usage.completion_tokens} tokens", end="")
            case RunFinished(result=result):
                print(f"[done] {result.stop_reason.value} in {result.duration_s:.2f} s")
                code = 0 if result.final_answer else 1
    return code


if __name__ == "__main__":
    if "--engine" in sys.argv or "--cli" in sys.argv:  # a real engine: the CLI builds it
        from agent.cli.run import recipe_main

        raise SystemExit(recipe_main(__file__, [a for a in sys.argv[1:] if a != "--cli"]))
    from agent.engine.spec import scripted_engine

    raise SystemExit(anyio.run(watch, build_agent(scripted_engine(SCRIPT)), TASK))
