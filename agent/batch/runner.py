"""Run many tasks at once on one shared engine; each finished task becomes one results line.

    runner = BatchRunner(engine, tasks, results, concurrency=50, observer=progress)
    summary = await runner.run()

One engine serves every task, so the bundled engine batches their decode steps. Tasks with the
same configuration share one :class:`Agent` (and its toolkits' shared resources). A task that
fails, times out or whose check function raises is recorded with its status and error; it
never stops the others. Cancelling the batch (Ctrl-C) stops the running tasks without writing
lines for them, so ``--resume`` runs them again.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import structlog

from agent.batch.results import ResultsFile
from agent.batch.tasks import Task, TaskConfig, score
from agent.engine.base import Engine, SamplingParams
from agent.events import RunResult, StopReason
from agent.harmony.codec import SystemSettings
from agent.runner import Agent

log = structlog.get_logger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Observer(Protocol):
    """What a progress display hears about."""

    def task_started(self, task: Task) -> None: ...

    def task_finished(self, task: Task, record: dict[str, Any]) -> None: ...


class _Silent:
    def task_started(self, task: Task) -> None:
        return None

    def task_finished(self, task: Task, record: dict[str, Any]) -> None:
        return None


@dataclass(slots=True)
class BatchStats:
    started: float = field(default_factory=time.monotonic)
    finished: int = 0
    skipped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def result_record(task: Task, result: RunResult | None, *, status: str, error: str | None,
                  queued_s: float, duration_s: float, passed: bool | None,
                  score_value: float | None) -> dict[str, Any]:
    """The results line of one task."""
    run = result.to_dict() if result is not None else {}
    tool_time = sum(r.duration_s for r in result.tool_calls) if result is not None else 0.0
    return {
        "id": task.id, "status": status, "passed": passed, "score": score_value,
        "final_answer": run.get("final_answer"), "stop_reason": run.get("stop_reason"),
        "expected": task.expected, "error": error, "prompt": task.prompt,
        "usage": {
            "turns": len(result.usage) if result else 0,
            "prompt_tokens": result.prompt_tokens if result else 0,
            "reused_tokens": result.reused_tokens if result else 0,
            "completion_tokens": result.completion_tokens if result else 0,
        },
        "timings": {"queued_s": round(queued_s, 4), "duration_s": round(duration_s, 4),
                    "tool_time_s": round(tool_time, 4)},
        "tool_calls": run.get("tool_calls", []), "messages": run.get("messages", []),
        "files": run.get("files", []), "run_id": run.get("run_id"),
    }


def agent_for(config: TaskConfig, engine: Engine,
              toolkit_options: dict[str, dict[str, Any]] | None = None) -> Agent:
    from agent.cli.common import make_policy, make_toolkits
    from policies import AutoApprover

    policy = make_policy(config.policy)
    return Agent(engine, tools=make_toolkits(config.tools, toolkit_options), policy=policy,
                 approver=AutoApprover(policy.approval), instructions=config.instructions,
                 system=SystemSettings(reasoning_effort=config.reasoning), limits=config.limits,
                 sampling=SamplingParams(temperature=config.temperature))


class BatchRunner:
    def __init__(self, engine: Engine, tasks: Sequence[Task], results: ResultsFile, *,
                 concurrency: int = 8, observer: Observer | None = None,
                 toolkit_options: dict[str, dict[str, Any]] | None = None) -> None:
        self.engine = engine
        self.tasks = list(tasks)
        self.results = results
        self.concurrency = max(1, concurrency)
        self.observer = observer or _Silent()
        self.stats = BatchStats()
        self._agents: dict[tuple[Any, ...], Agent] = {}
        self._toolkit_options = toolkit_options

    def pending(self) -> list[Task]:
        return [t for t in self.tasks if t.id not in self.results.records]

    async def run(self) -> BatchStats:
        pending = self.pending()
        self.stats = BatchStats(skipped=len(self.tasks) - len(pending))
        async with AsyncExitStack() as stack:
            for task in pending:  # start every toolkit before the first task
                key = task.config.key()
                if key not in self._agents:
                    agent = agent_for(task.config, self.engine, self._toolkit_options)
                    self._agents[key] = await stack.enter_async_context(agent)
            queue = iter(pending)
            async with anyio.create_task_group() as tg:
                for _ in range(min(self.concurrency, len(pending))):
                    tg.start_soon(self._worker, queue)
        return self.stats

    async def _worker(self, queue: Iterator[Task]) -> None:
        for task in queue:  # workers share one iterator: each task is taken once
            await self._one(task)

    async def _one(self, task: Task) -> None:
        queued = self.stats.elapsed
        self.observer.task_started(task)
        agent = self._agents[task.config.key()]
        run_id = f"{_UNSAFE.sub('_', task.id)[:48]}-{uuid.uuid4().hex[:6]}"
        start = time.monotonic()
        result: RunResult | None = None
        error: str | None = None
        passed: bool | None = None
        value: float | None = None
        try:
            with anyio.fail_after(task.timeout_s):
                result = await agent.run(task.prompt, run_id=run_id)
            status = "ok" if result.stop_reason is StopReason.FINAL else "no_answer"
            if task.scored:
                passed, value = await score(task, result)
        except TimeoutError:
            status, error = "timeout", f"the task ran past its timeout of {task.timeout_s:g} s"
        except Exception as exc:  # one task's failure must never stop the batch
            leaf = exc
            while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
                leaf = leaf.exceptions[0]
            status, error = "error", f"{type(leaf).__name__}: {leaf}"
            log.warning("batch_task_failed", task=task.id, error=error)
        if task.scored and passed is None:
            passed, value = False, 0.0
        record = result_record(task, result, status=status, error=error, queued_s=queued,
                               duration_s=time.monotonic() - start, passed=passed,
                               score_value=value)
        self.results.append(record)
        self.stats.finished += 1
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        self.observer.task_finished(task, record)
