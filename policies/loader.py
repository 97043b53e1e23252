"""Policy files: YAML in, a validated :class:`Policy` out, errors pointing at lines.

A file may start from a preset or another file with ``extends:``; mappings are merged key by key
(lists and scalars replace)::

    extends: strict            # or a path, relative to this file
    budgets:
      tool_calls: 30
    browser:
      allow_private: ["127.0.0.1"]

Every problem is reported as ``file:line: field: message`` (pydantic error locations mapped to
the YAML node that holds the value, or its nearest parent when the value is missing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.errors import ConfigFileError, FileProblem, UserError
from policies.config import Policy

Loc = tuple[str | int, ...]


PolicyProblem = FileProblem


class PolicyFileError(ConfigFileError):
    """A policy file that cannot be used."""


def load_policy(path_or_name: str | Path) -> Policy:
    """A preset name (``strict``) or a YAML file path."""
    from policies.presets import PRESETS, preset

    if isinstance(path_or_name, str) and path_or_name in PRESETS:
        return preset(path_or_name)
    path = Path(path_or_name)
    if not path.exists() and isinstance(path_or_name, str) and path.suffix not in (".yaml", ".yml"):
        raise UserError(
            f"no policy file or preset named {path_or_name!r}; presets: {', '.join(PRESETS)}"
        )
    data, lines = _read(path, chain=())
    if ("name",) not in lines:  # a file's policy is named after the file unless it says
        data["name"] = path.stem
    return _validate(data, lines, str(path))


def policy_from_yaml(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Policy:
    data, lines = _parse(text, source)
    data = _extend(data, lines, source, base_dir or Path.cwd(), chain=(source,))
    if ("name",) not in lines:
        data["name"] = "custom"
    return _validate(data, lines, source)


# --- reading and merging -------------------------------------------------------------------


def _read(path: Path, chain: tuple[str, ...]) -> tuple[dict[str, Any], dict[Loc, int]]:
    source = str(path)
    if source in chain:
        raise PolicyFileError([PolicyProblem(source, None, "extends", "circular extends: "
                                             + " -> ".join([*chain, source]))])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError([PolicyProblem(source, None, "", f"cannot read: {exc.strerror}")]) from exc
    data, lines = _parse(text, source)
    _anchor_paths(data, path.parent)
    return _extend(data, lines, source, path.parent, (*chain, source)), lines


def _anchor_paths(data: dict[str, Any], base: Path) -> None:
    """Relative host paths in a file mean relative to that file, not to the current folder."""
    patch = data.get("apply_patch")
    if isinstance(patch, dict) and isinstance(patch.get("workspace"), str):
        patch["workspace"] = str(base / Path(patch["workspace"]).expanduser())
    sandbox = data.get("sandbox")
    if isinstance(sandbox, dict) and isinstance(sandbox.get("mounts"), dict):
        sandbox["mounts"] = {
            (k if not isinstance(k, str) else str(base / Path(k).expanduser())): v
            for k, v in sandbox["mounts"].items()
        }


def _extend(
    data: dict[str, Any], lines: dict[Loc, int], source: str, base: Path, chain: tuple[str, ...]
) -> dict[str, Any]:
    parent = data.pop("extends", None)
    if parent is None:
        return data
    from policies.presets import PRESETS

    if not isinstance(parent, str):
        raise PolicyFileError([PolicyProblem(source, lines.get(("extends",)), "extends",
                                             "should be a preset name or a file path")])
    if parent in PRESETS:
        base_data: dict[str, Any] = PRESETS[parent].model_dump(mode="json", exclude_unset=False)
    else:
        target = base / parent
        if not target.exists():
            raise PolicyFileError([PolicyProblem(
                source, lines.get(("extends",)), "extends",
                f"{parent!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file",
            )])
        base_data, _ = _read(target, chain)
    return _merge(base_data, data)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key not in (
            "rules", "timeouts_s", "calls_per_tool", "mounts"
        ):
            out[key] = _merge(out[key], value)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}  # rule tables add to the parent's
        else:
            out[key] = value
    return out


# --- YAML with line numbers ------------------------------------------------------------------


def _parse(text: str, source: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyFileError([PolicyProblem(source, line, "", f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise PolicyFileError([PolicyProblem(source, None, "", f"invalid YAML: {exc}")]) from exc
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or node is None:
        raise PolicyFileError([PolicyProblem(source, 1, "", "a policy file must be a mapping "
                                             "(keys like rules:, budgets:, browser:)")])
    lines: dict[Loc, int] = {}
    problems: list[PolicyProblem] = []
    _index(node, (), lines, problems, source)
    if problems:
        raise PolicyFileError(problems)
    return data, lines


def _index(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[PolicyProblem], source: str
) -> None:
    """Record the line of every value by location; report duplicate keys (YAML keeps the last)."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(PolicyProblem(source, key_node.start_mark.line + 1,
                                              _field((*loc, key)), "duplicate key"))
            seen.add(key)
            # The key's line is where a person looks for the field, even for a nested value.
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _index(value_node, (*loc, key), lines, problems, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), lines, problems, source)


# --- validation ------------------------------------------------------------------------------


def _validate(data: dict[str, Any], lines: dict[Loc, int], source: str) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err, lines, source) for err in exc.errors(include_url=False)]
        problems.sort(key=lambda p: p.line or 0)  # in file order, as a person reads it
        raise PolicyFileError(problems) from None


def _problem(err: Any, lines: dict[Loc, int], source: str) -> PolicyProblem:
    loc = _clean_loc(tuple(err["loc"]))
    probe: Loc = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    message = str(err["msg"]).removeprefix("Value error, ")
    return PolicyProblem(source, lines.get(probe), _field(loc), message)


def _clean_loc(loc: Loc) -> Loc:
    # pydantic adds markers for dict keys ("[key]") and union members ("int",
    # "function-after[...]"); they are not in the file, so drop them.
    return tuple(p for p in loc if not (isinstance(p, str) and _MARKER.match(p)))


_MARKER = re.compile(r"^(\[key\]|int|float|str|bool|none|[a-z-]+\[.*\])$")


def _field(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
