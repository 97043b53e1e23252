"""Generate examples: sample a task per index, run it through a real Agent, check, render.

Each example draws from its own RNG (seeded with ``seed``, family and index), so the data is the
same whatever the concurrency. Runs whose final answer fails the task's check are rejected and
counted, never written.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog

from agent.demo_model.example import Example
from agent.demo_model.families import browser_tasks, function_tasks, patch_tasks, python_tasks
from agent.demo_model.render import to_example
from agent.demo_model.script import Task, task_engine
from agent.engine.base import Engine, SamplingParams
from agent.events import RunResult, StopReason
from agent.harmony.codec import HarmonyCodec, SystemSettings
from agent.runner import Agent
from agent.state import RunLimits
from policies.config import Policy, SandboxPolicy
from toolkits.apply_patch import ApplyPatchToolkit
from toolkits.base import Toolkit
from toolkits.browser import BrowserConfig, BrowserToolkit
from toolkits.python import PythonToolkit

log = structlog.get_logger(__name__)

FAMILIES: dict[str, Callable[[random.Random], Task]] = {
    "python": python_tasks.sample,
    "browser": browser_tasks.sample,
    "apply_patch": patch_tasks.sample,
    "functions": function_tasks.sample,
}
_DATES = [f"2025-{m:02d}-{d:02d}" for m in range(1, 13) for d in (3, 11, 19, 27)]


@dataclass
class GenerationStats:
    examples: int = 0
    rejected: int = 0
    seconds: float = 0.0
    per_family: dict[str, int] = field(default_factory=dict)


def sandbox_kind() -> str:
    """bubblewrap when installed (isolated, about as fast); else the opt-in local interpreter."""
    return "bubblewrap" if shutil.which("bwrap") else "local"


def _toolkits(task: Task, workdir: Path, kind: str) -> list[Toolkit]:
    policy = Policy(sandbox=SandboxPolicy(kind=kind, allow_local=kind == "local"))
    match task.family:
        case "python":
            return [PythonToolkit(kind=kind, policy=policy)]
        case "apply_patch":
            return [ApplyPatchToolkit(), PythonToolkit(kind=kind, policy=policy)]
        case "browser":
            recording = workdir / "site.jsonl"
            recording.write_text("".join(json.dumps(e) + "\n" for e in task.recording))
            return [BrowserToolkit(BrowserConfig(search="recorded", open="recorded",
                                                 replay_from=recording))]
        case _:
            return []


def task_agent(task: Task, rng: random.Random, codec: HarmonyCodec, workdir: Path, kind: str,
               engine: Engine, *, temperature: float = 1.0) -> Agent:
    """The Agent a task runs in: its toolkits, tools, instructions and a sampled system message.

    Data generation plays ``task``'s script on it; evaluation puts the trained model there.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    system = SystemSettings(reasoning_effort=rng.choice(["low", "medium", "high"]),
                            conversation_start_date=rng.choice(_DATES))
    policy = Policy(sandbox=SandboxPolicy(kind=kind, allow_local=kind == "local"))
    return Agent(engine, _toolkits(task, workdir, kind), tools=task.tools,
                 policy=policy, instructions=task.instructions, system=system, codec=codec,
                 limits=RunLimits(max_turns=8),
                 sampling=SamplingParams(temperature=temperature, max_tokens=2048),
                 files_root=workdir / "runs", files=task.files)


async def run_checked(agent: Agent, task: Task, workdir: Path) -> tuple[RunResult, bool]:
    """Run ``task`` on ``agent``; the result and whether its answer (and files) pass the check."""
    result = await agent.run(task.prompt, run_id="run")
    folder = result.files_dir or workdir
    files = {name: (folder / name).read_text() for name in task.files if (folder / name).is_file()}
    final = result.final_answer or ""
    return result, result.stop_reason is StopReason.FINAL and task.check(final, files)


async def run_task(task: Task, rng: random.Random, codec: HarmonyCodec, workdir: Path,
                   kind: str) -> Example | None:
    """One real run of ``task``; the example, or None when the answer failed the check."""
    agent = task_agent(task, rng, codec, workdir, kind, task_engine(task, codec))
    result, ok = await run_checked(agent, task, workdir)
    if not ok:
        log.warning("demo_model.rejected", family=task.family, task=task.prompt,
                    final=result.final_answer, stop=result.stop_reason.value)
        return None
    return to_example(codec, result.messages, family=task.family, task=task.prompt,
                      answer=task.answer)


def sample_task(family: str, seed: int, split: str, i: int) -> tuple[Task, random.Random]:
    """Task ``i`` of a split's stream, and the RNG that goes on to sample its system message."""
    rng = random.Random(f"{seed}:{split}:{family}:{i}")
    return FAMILIES[family](rng), rng


async def generate(n: int, seed: int, families: Sequence[str], *, split: str = "train",
                   concurrency: int = 8, codec: HarmonyCodec | None = None,
                   ) -> tuple[list[Example], GenerationStats]:
    """``n`` examples, families in turn; ``split`` names an independent stream of tasks."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    codec = codec or HarmonyCodec()
    kind = sandbox_kind()
    out: list[Example | None] = [None] * n
    limiter = anyio.CapacityLimiter(concurrency)
    stats = GenerationStats()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="demo-model-") as tmp:

        async def one(i: int) -> None:
            task, rng = sample_task(families[i % len(families)], seed, split, i)
            async with limiter:
                out[i] = await run_task(task, rng, codec, Path(tmp) / str(i), kind)

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
    examples = [e for e in out if e is not None]
    stats.examples, stats.rejected = len(examples), n - len(examples)
    stats.seconds = time.perf_counter() - started
    for e in examples:
        stats.per_family[e.family] = stats.per_family.get(e.family, 0) + 1
    return examples, stats
