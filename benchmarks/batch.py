"""Batch runtime overhead: tasks per second for scripted tasks with a no-op tool.

    .venv/bin/python benchmarks/batch.py [--tasks 1000] [--concurrency 1 10 100]

Each task is two turns (a call to a no-op function tool, then a final answer) on the scripted
engine, so the time measured is the runtime's own: prompt rendering, parsing, dispatch, policy,
results lines. Printed side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from agent import Agent, ScriptedEngine, tool
from agent.batch import BatchRunner, ResultsFile
from agent.batch.tasks import Task, TaskConfig
from agent.harmony.transcript import Transcript
from agent.state import RunLimits
from policies.run import RunPolicy

SCRIPT = [
    '<|channel|>commentary to=functions.noop <|constrain|>json<|message|>{"x": 1}<|call|>',
    "<|channel|>final<|message|>done<|return|>",
]


@tool
async def noop(x: int) -> str:
    """Does nothing (async: a sync tool would add a worker-thread hop per call)."""
    return "ok"


def _tasks(n: int) -> list[Task]:
    config = TaskConfig(("__main__:noop",), None, RunLimits(), None, "low", 1.0)
    return [Task(f"t{i}", f"task {i}", config, ["done"], "exact", None, None, "bench")
            for i in range(n)]


async def _measure(n: int, concurrency: int, folder: Path) -> float:
    engine = ScriptedEngine(SCRIPT)
    path = folder / f"results-{concurrency}.jsonl"
    with ResultsFile(path).open(overwrite=True) as results:
        runner = BatchRunner(engine, _tasks(n), results, concurrency=concurrency)
        start = time.perf_counter()
        stats = await runner.run()
        elapsed = time.perf_counter() - start
    assert stats.statuses.get("ok") == n, stats
    return n / elapsed


def _ms(fn: Callable[[], object], n: int = 200) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def breakdown() -> list[tuple[str, float]]:
    """Per-run costs of the runtime's fixed steps (ms), to show where a task's time goes."""
    agent = Agent(ScriptedEngine(SCRIPT), tools=[noop])
    policy = RunPolicy(agent.policy)
    opening = agent.opening("task 1", policy)
    result = anyio.run(agent.run, "task 1")
    record = result.to_dict()

    async def sequential(n: int) -> None:
        for i in range(n):
            await agent.run(f"task {i}")

    anyio.run(sequential, 20)
    start = time.perf_counter()
    anyio.run(sequential, 200)
    whole = (time.perf_counter() - start) / 200 * 1e3
    return [
        ("Agent.run, whole (2 turns, sequential)", whole),
        ("  Agent.opening (agent/runner.py)", _ms(lambda: agent.opening("task 1", policy))),
        ("  Transcript(opening) render (agent/harmony/transcript.py)",
         _ms(lambda: Transcript(agent.codec, opening))),
        ("  Agent.namespaces, x2 per run (toolkits/functions.py schema)",
         2 * _ms(lambda: agent.namespaces(policy))),
        ("  RunPolicy(policy) (policies/run.py)", _ms(lambda: RunPolicy(agent.policy))),
        ("  RunResult.to_dict + json.dumps (results line)",
         _ms(lambda: json.dumps(result.to_dict()))),
        ("  json.dumps(record) alone", _ms(lambda: json.dumps(record))),
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print(f"{args.tasks} scripted tasks, 2 turns each (no-op tool call + final answer)")
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(_measure, 50, 10, Path(tmp))  # warm-up: imports, tokenizer, schema caches
        rates = {c: anyio.run(_measure, args.tasks, c, Path(tmp)) for c in args.concurrency}
    base = rates[args.concurrency[0]]
    print(f"{'concurrency':>12} {'tasks/s':>10} {'vs first':>9}")
    for c, rate in rates.items():
        print(f"{c:>12} {rate:>10.1f} {rate / base:>8.2f}x")
    print("\nwhere one task's time goes (ms per run, same process):")
    for label, ms in breakdown():
        print(f"  {label:<62} {ms:7.3f}")


if __name__ == "__main__":
    main()
