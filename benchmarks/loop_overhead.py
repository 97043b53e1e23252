"""The loop's own cost per turn (render + decode-parse + dispatch), early and late in a run.

A scripted engine (whole completion in one chunk) and a no-op tool leave only the runtime's work.
Goal: under 1 ms per turn and flat as the conversation grows (ratio turn-200 / turn-10 near 1).

    .venv/bin/python benchmarks/loop_overhead.py [--turns 210] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import AsyncIterator

import anyio

from agent import Agent, EngineRequest, RunLimits, ScriptedEngine, tool
from agent.engine.base import EngineEvent
from agent.events import TurnFinished


@tool
async def noop(x: int) -> str:
    """Does nothing."""
    return "ok"


class TimedEngine:
    """Wraps an engine and adds up the time spent inside it, so it can be taken out."""

    def __init__(self, inner: ScriptedEngine) -> None:
        self.inner = inner
        self.spent = 0.0

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        t = time.perf_counter()
        stream = self.inner.generate(request)
        self.spent += time.perf_counter() - t
        while True:
            t = time.perf_counter()
            try:
                event = await stream.__anext__()
            except StopAsyncIteration:
                self.spent += time.perf_counter() - t
                return
            self.spent += time.perf_counter() - t
            yield event

    async def aclose(self) -> None:
        await self.inner.aclose()


async def per_turn_times(turns: int) -> list[float]:
    call = ('<|channel|>commentary to=functions.noop <|constrain|>json<|message|>{"x": 1}'
            "<|call|>")
    engine = TimedEngine(ScriptedEngine(
        [call] * turns + ["<|channel|>final<|message|>done<|return|>"], chunk_tokens=1_000))
    agent = Agent(engine, tools=[noop], limits=RunLimits(max_turns=turns + 1))
    stamps: list[float] = []
    async with agent:
        t0 = time.perf_counter()
        async for event in agent.stream("go"):
            if isinstance(event, TurnFinished):
                # the engine's own time (the script's prefix bookkeeping) is not the loop's
                stamps.append(time.perf_counter() - engine.spent)
    return [b - a for a, b in zip([t0, *stamps], stamps, strict=False)]


def window(times: list[float], at: int, width: int = 10) -> float:
    return statistics.median(times[at - width // 2: at + width // 2])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=210)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    early, late = [], []
    for _ in range(args.repeats):
        times = await per_turn_times(args.turns)
        early.append(window(times, 10))
        late.append(window(times, 200))
    e, l_ = statistics.median(early), statistics.median(late)
    print(f"loop cost per turn at turn 10:  {e * 1e3:.3f} ms")
    print(f"loop cost per turn at turn 200: {l_ * 1e3:.3f} ms")
    print(f"ratio turn-200 / turn-10: {l_ / e:.2f}")


if __name__ == "__main__":
    anyio.run(main)
