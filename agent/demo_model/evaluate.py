"""Run held-out tasks on a real model and score them: right tool, valid arguments, right answer.

    python -m agent.demo_model.evaluate [--engine local:demo] [--n 20] [--sandbox docker]

Tasks come from the generator's held-out stream (``split="heldout"``), so none was trained on;
each runs in the same Agent set-up as the data (toolkits, tools, instructions, system message)
with greedy decoding (temperature 0), and the real toolkits answer. A task passes when the
model's first call goes to the tool the task needs, no call failed (bad arguments, unknown
recipient, refused), and the final answer (and any file it had to fix) passes the task's check.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import structlog

from agent.demo_model.generate import FAMILIES, run_checked, sample_task, task_agent
from agent.demo_model.script import Task
from agent.engine.base import Engine
from agent.events import Outcome
from agent.harmony.codec import HarmonyCodec

log = structlog.get_logger(__name__)
_RECIPIENT = re.compile(r" to=([^\s<]+)")


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    family: str
    task: str
    expected_tool: str
    tools_called: list[str]
    final: str | None
    right_tool: bool
    valid_calls: bool
    correct: bool

    @property
    def passed(self) -> bool:
        return self.right_tool and self.valid_calls and self.correct


def expected_tool(task: Task) -> str:
    """The recipient of the script's first call: the tool this task needs."""
    match = _RECIPIENT.search(task.respond([]))
    assert match is not None, "every demo task starts with a tool call"
    return match[1]


async def evaluate(engine: Engine, *, n: int = 20, seed: int = 0,
                   families: Sequence[str] = tuple(FAMILIES), sandbox: str = "bubblewrap",
                   codec: HarmonyCodec | None = None) -> list[TaskOutcome]:
    """Run ``n`` held-out tasks (families in turn) one after another on ``engine``."""
    codec = codec or HarmonyCodec()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="demo-eval-") as tmp:
        for i in range(n):
            task, rng = sample_task(families[i % len(families)], seed, "heldout", i)
            workdir = Path(tmp) / str(i)
            agent = task_agent(task, rng, codec, workdir, sandbox, engine, temperature=0.0)
            result, correct = await run_checked(agent, task, workdir)
            calls = [r.call.recipient for r in result.tool_calls]
            want = expected_tool(task)
            outcome = TaskOutcome(
                family=task.family, task=task.prompt, expected_tool=want, tools_called=calls,
                final=result.final_answer, right_tool=bool(calls) and calls[0] == want,
                valid_calls=all(r.outcome is Outcome.OK for r in result.tool_calls),
                correct=correct)
            log.info("demo_model.evaluated", family=task.family, passed=outcome.passed,
                     tools=calls, final=result.final_answer)
            outcomes.append(outcome)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.demo_model.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="local:demo")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sandbox", default="bubblewrap", choices=["docker", "bubblewrap", "local"])
    parser.add_argument("--json", type=Path, help="write every outcome here")
    args = parser.parse_args(argv)
    from agent.engine.spec import engine_from_spec
    from agent.logs import configure_logging

    configure_logging(level="info")
    engine = engine_from_spec(args.engine)

    async def go() -> list[TaskOutcome]:
        try:
            return await evaluate(engine, n=args.n, seed=args.seed, sandbox=args.sandbox)
        finally:
            await engine.aclose()

    outcomes = anyio.run(go)
    passed = sum(o.passed for o in outcomes)
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    print(f"{passed}/{len(outcomes)} held-out tasks passed")
    return 0 if outcomes and passed == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
