"""Batch tasks as typed records, and how their answers are scored."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.errors import ConfigFileError, FileProblem
from agent.events import RunResult
from agent.state import RunLimits

Check = Callable[..., Any]  # (result: RunResult, task: Task) -> bool | float (maybe async)


Problem = FileProblem


class BatchFileError(ConfigFileError):
    """A batch file that cannot run."""


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """Everything that shapes a task's Agent; tasks with equal configs share one Agent."""

    tools: tuple[str, ...]
    policy: str | None
    limits: RunLimits
    instructions: str | None
    reasoning: Literal["low", "medium", "high"]
    temperature: float

    def key(self) -> tuple[Any, ...]:
        return (self.tools, self.policy, self.limits.model_dump_json(), self.instructions,
                self.reasoning, self.temperature)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    prompt: str
    config: TaskConfig
    expected: list[str] | None
    match: Literal["exact", "contains", "regex"]
    check: Check | None
    timeout_s: float | None
    source: str  # file:line it was defined at

    @property
    def scored(self) -> bool:
        return self.expected is not None or self.check is not None


def load_check(ref: str, base: Path, where: Problem) -> Check:
    """``file.py:function`` (relative to the batch file) or ``package.module:function``."""
    field = f"{where.field}.check" if where.field else "check"
    target, _, name = ref.rpartition(":")
    if not target or not name:
        raise BatchFileError([Problem(where.source, where.line, field,
                                      f"{ref!r}: expected file.py:function or module:function")])
    try:
        if target.endswith(".py"):
            path = Path(target) if Path(target).is_absolute() else base / target
            module_name = f"_oss_batch_check_{path.stem}"
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                if spec is None or spec.loader is None or not path.is_file():
                    raise FileNotFoundError(path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        fn = getattr(module, name)
    except (ImportError, FileNotFoundError, AttributeError, SyntaxError) as exc:
        raise BatchFileError([Problem(where.source, where.line, field,
                                      f"cannot load {ref!r}: {type(exc).__name__}: {exc}")]) \
            from None
    if not callable(fn):
        raise BatchFileError([Problem(where.source, where.line, field, f"{ref!r} is not a "
                                      "function")])
    return fn  # type: ignore[no-any-return]


_PUNCT = re.compile(r"[\s\.,;:!?\"'`*_]+")


def normalize(text: str) -> str:
    return _PUNCT.sub(" ", text.casefold()).strip()


def matches(answer: str, expected: list[str], how: str) -> bool:
    if how == "regex":
        return any(re.search(e, answer) for e in expected)
    got = normalize(answer)
    if how == "contains":
        return any(normalize(e) in got for e in expected)
    return any(normalize(e) == got for e in expected)


async def score(task: Task, result: RunResult) -> tuple[bool, float]:
    """(passed, score). A check function decides when given; otherwise ``expected`` does.

    Raises whatever the check function raises (the runner records it as the task's error).
    """
    if task.check is not None:
        value = task.check(result, task)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, bool):
            return value, float(value)
        number = float(value)
        return number >= 1.0, number
    assert task.expected is not None
    ok = result.final_answer is not None and matches(result.final_answer, task.expected,
                                                     task.match)
    return ok, float(ok)
