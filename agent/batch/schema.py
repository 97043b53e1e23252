"""The batch file: YAML in, validated :class:`Task` records out, errors pointing at lines.

    defaults:                       # every task starts from these
      engine: scripted:script.yaml  # one engine shared by all tasks (relative to this file)
      tools: [python]
      policy: default
      limits: {max_turns: 10}
      timeout_s: 120                # a task running longer is stopped and marked "timeout"
      concurrency: 16
      match: exact                  # how `expected` is compared: exact | contains | regex
      check: checks.py:score        # or a Python check function: (result, task) -> bool | float
    tasks:
      - id: add
        prompt: What is 2 + 2?
        expected: "4"
        limits: {max_turns: 3}      # per-task overrides: tools, policy, limits, instructions, ...
    inputs:                         # and/or rows of a JSONL or CSV file through a template
      file: questions.jsonl
      prompt: "Answer briefly: {question}"
      id: "{qid}"
      expected: "{answer}"

Problems are reported as ``file:line: field: message``, all of them at once.
"""

from __future__ import annotations

import copy
import csv
import json
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from agent.batch.tasks import BatchFileError, Problem, Task, TaskConfig, load_check
from agent.engine.spec import KINDS
from agent.state import RunLimits

Loc = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _partial(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every field optional but still checked, so a bad value in a per-task
    override is reported at its own line."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        optional = copy.copy(info)
        optional.default = None
        fields[name] = (info.annotation | None, optional)
    return create_model(f"Partial{model.__name__}", __config__=ConfigDict(extra="forbid"),
                        **fields)


PartialLimits = _partial(RunLimits)


class AgentOptions(_Strict):
    """What a task may override."""

    tools: list[str] | None = None
    policy: str | None = None
    limits: PartialLimits | None = None  # type: ignore[valid-type]
    instructions: str | None = None
    reasoning: Literal["low", "medium", "high"] | None = None
    temperature: float | None = Field(None, ge=0)
    timeout_s: float | None = Field(None, gt=0)
    match: Literal["exact", "contains", "regex"] | None = None
    check: str | None = None

class Defaults(AgentOptions):
    engine: str | None = None
    concurrency: int | None = Field(None, ge=1)

    @field_validator("engine")
    @classmethod
    def _spec(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")) \
                and value.partition(":")[0] not in ("scripted", "local", "vllm"):
            raise ValueError(f"{value!r} is not an engine spec; expected one of "
                             f"{', '.join(KINDS)}")
        return value


class TaskEntry(AgentOptions):
    id: str | None = None
    prompt: str = Field(min_length=1)
    expected: str | list[str] | None = None


class Inputs(_Strict):
    file: Path
    prompt: str = Field(min_length=1)
    id: str | None = None  # template; default: the row number
    expected: str | None = None  # template


class BatchFile(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    tasks: list[TaskEntry] = Field(default_factory=list)
    inputs: Inputs | None = None

    @model_validator(mode="after")
    def _has_tasks(self) -> BatchFile:
        if not self.tasks and self.inputs is None:
            raise ValueError("no tasks: give a 'tasks:' list or an 'inputs:' file")
        return self


# -- YAML positions ------------------------------------------------------------------------------
def _node_at(root: yaml.Node | None, loc: Loc) -> yaml.Node | None:
    """The deepest YAML node along ``loc`` (a missing key stops at its parent)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == part]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node


def _line(root: yaml.Node | None, loc: Loc) -> int | None:
    node = _node_at(root, loc)
    return node.start_mark.line + 1 if node is not None else None


def _problems(exc: ValidationError, source: str, root: yaml.Node | None,
              prefix: Loc = ()) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = (*prefix, *(p for p in err["loc"] if isinstance(p, str | int)))
        field = ".".join(str(p) for p in loc)
        out.append(Problem(source, _line(root, loc), field, err["msg"].removeprefix("Value error, ")))
    return out


# -- loading -------------------------------------------------------------------------------------
def _parse(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise BatchFileError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) \
            from exc
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise BatchFileError([Problem(str(path), line, "", f"not valid YAML: "
                                      f"{getattr(exc, 'problem', exc)}")]) from exc


def _render(template: str, row: dict[str, Any], where: Problem) -> str:
    try:
        return string.Formatter().vformat(template, (), row)
    except (KeyError, IndexError) as exc:
        raise BatchFileError([Problem(where.source, where.line, where.field,
                                      f"the template names {exc} but the row has "
                                      f"{', '.join(row) or 'no fields'}")]) from None


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL or CSV file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BatchFileError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) \
            from exc
    if path.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        return [(reader.line_num, dict(row)) for row in reader]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BatchFileError([Problem(str(path), n, "", f"not valid JSON: {exc}")]) from None
        if not isinstance(row, dict):
            raise BatchFileError([Problem(str(path), n, "", "each line must be a JSON object")])
        rows.append((n, row))
    return rows


def _entries(doc: BatchFile, base: Path, source: str, root: yaml.Node | None,
             ) -> list[tuple[TaskEntry, Problem]]:
    """Every task entry with where it came from (for ids and error messages)."""
    out = [(t, Problem(source, _line(root, ("tasks", i)), f"tasks.{i}", ""))
           for i, t in enumerate(doc.tasks)]
    if doc.inputs is not None:
        inputs = doc.inputs
        file = inputs.file if inputs.file.is_absolute() else base / inputs.file
        for n, row in _rows(file):
            where = Problem(str(file), n, "", "")
            entry = TaskEntry(
                id=_render(inputs.id, row, where) if inputs.id else f"{file.stem}-{n}",
                prompt=_render(inputs.prompt, row, where),
                expected=_render(inputs.expected, row, where) if inputs.expected else None)
            out.append((entry, where))
    return out


def _resolve_ref(ref: str | None, base: Path) -> str | None:
    """Paths inside specs are relative to the batch file."""
    if ref is None:
        return None
    for kind in ("scripted:", "local:"):
        if ref.startswith(kind) and not Path(ref[len(kind):]).is_absolute():
            return kind + str(base / ref[len(kind):])
    if ref.endswith((".yaml", ".yml")) and not Path(ref).is_absolute():
        return str(base / ref)  # a policy file
    return ref


def load_batch(path: str | Path) -> tuple[Defaults, list[Task]]:
    """Parse and validate a batch file.

    Raises:
        BatchFileError: every problem found, each as ``file:line: field: message``.
    """
    path = Path(path)
    source, base = str(path), path.resolve().parent
    data, root = _parse(path)
    try:
        doc = BatchFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise BatchFileError(_problems(exc, source, root)) from None
    defaults = doc.defaults.model_copy(update={
        "engine": _resolve_ref(doc.defaults.engine, base),
        "policy": _resolve_ref(doc.defaults.policy, base)})
    tasks: list[Task] = []
    problems: list[Problem] = []
    seen: dict[str, Problem] = {}
    for i, (entry, where) in enumerate(_entries(doc, base, source, root)):
        task_id = entry.id or f"task-{i + 1}"
        if task_id in seen:
            first = seen[task_id]
            problems.append(Problem(where.source, where.line, where.field or "id",
                                    f"duplicate task id {task_id!r} (first at {first.source}:"
                                    f"{first.line})"))
            continue
        seen[task_id] = where
        try:
            tasks.append(_task(task_id, entry, defaults, base, where))
        except ValidationError as exc:  # the merged limits
            loc: Loc = ("tasks", int(where.field[6:]), "limits") if where.field else ()
            problems.extend(_problems(exc, where.source, root if where.field else None, loc))
        except BatchFileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise BatchFileError(problems)
    return defaults, tasks


def _task(task_id: str, entry: TaskEntry, d: Defaults, base: Path, where: Problem) -> Task:
    def pick(name: str) -> Any:
        value = getattr(entry, name)
        return getattr(d, name) if value is None else value

    def given(limits: BaseModel | None) -> dict[str, Any]:
        return limits.model_dump(exclude_unset=True) if limits is not None else {}

    limits = RunLimits.model_validate({**given(d.limits), **given(entry.limits)})
    config = TaskConfig(
        tools=tuple(pick("tools") or ()), policy=_resolve_ref(pick("policy"), base),
        limits=limits, instructions=pick("instructions"), reasoning=pick("reasoning") or "medium",
        temperature=1.0 if pick("temperature") is None else pick("temperature"))
    expected = entry.expected
    check_ref = pick("check")
    check = load_check(check_ref, base, where) if check_ref else None
    return Task(task_id, entry.prompt, config, [expected] if isinstance(expected, str)
                else expected, pick("match") or "exact", check, pick("timeout_s"),
                f"{where.source}:{where.line}" if where.line else where.source)
