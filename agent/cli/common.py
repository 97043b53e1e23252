"""What ``run``, ``chat`` and ``batch`` share: flags, settings, toolkits by name, recipes.

Recipe convention (``recipes/*.py``): a module exposing

- ``TASK``: the task it runs by default;
- ``SCRIPT``: completions (Harmony text) so it runs on the scripted engine with no model;
- ``build_agent(engine) -> Agent``: the agent, on whatever engine it is given;

and ending with ``raise SystemExit(recipe_main(__file__))`` under ``if __name__ == "__main__"``,
so ``python recipes/x.py [--engine SPEC]`` and ``agent run recipes/x.py`` do the same thing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from agent.engine.base import Engine, SamplingParams
from agent.engine.spec import engine_from_spec, scripted_engine
from agent.errors import UserError
from agent.harmony.codec import SystemSettings
from agent.runner import Agent
from agent.settings import ResolvedSettings, Settings, resolve_settings
from agent.state import RunLimits
from policies.config import Policy
from toolkits.base import Toolkit

# name -> (module, class, extra to install when the module's dependencies are missing)
TOOLKITS: dict[str, tuple[str, str, str | None]] = {
    "browser": ("toolkits.browser", "BrowserToolkit", "browser"),
    "python": ("toolkits.python", "PythonToolkit", None),
    "apply_patch": ("toolkits.apply_patch", "ApplyPatchToolkit", None),
}


def add_agent_flags(p: argparse.ArgumentParser, *, batch: bool = False) -> None:
    """Flags every agent command takes; defaults are None so unset flags fall through."""
    g = p.add_argument_group("agent settings (flags > config file > OSS_AGENT_* env vars)")
    g.add_argument("--engine", help="engine spec: local:DIR, scripted:FILE, http(s)://URL, "
                   "vllm:MODEL")
    g.add_argument("--tools", help="comma-separated toolkits: browser, python, apply_patch, "
                   "or module:attr (your @tool functions or class)")
    g.add_argument("--policy", help="policy preset (strict, default, permissive, offline) or "
                   "YAML file")
    g.add_argument("--reasoning", choices=["low", "medium", "high"])
    g.add_argument("--instructions", help="developer instructions")
    g.add_argument("--max-turns", type=int, dest="max_turns")
    g.add_argument("--deadline", type=float, dest="deadline_s", metavar="SECONDS",
                   help="wall-clock limit of one run")
    g.add_argument("--temperature", type=float)
    g.add_argument("--device", help="device of the local engine (cpu, cuda, cuda:1)")
    if batch:
        g.add_argument("--concurrency", "-j", type=int, help="tasks at once")


def settings_from_args(args: argparse.Namespace) -> ResolvedSettings:
    flags = {key: getattr(args, key, None) for key in Settings.model_fields}
    return resolve_settings(flags)


def open_engine(settings: Settings) -> Engine:
    """The configured engine. Raises UserError when none is configured."""
    if not settings.engine:
        raise UserError("no engine configured: pass --engine SPEC, set OSS_AGENT_ENGINE, or put "
                        "engine = \"...\" in the config file (see `agent config`)")
    return engine_from_spec(settings.engine, device=settings.device, **settings.engine_options)


def _import_attr(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"--tools {ref}: cannot import {module_name} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"--tools {ref}: {module_name} has no attribute {attr!r}") from None


def make_toolkits(names: Sequence[str], options: dict[str, dict[str, Any]] | None = None,
                  ) -> list[Any]:
    """Toolkits (and loose ``@tool`` functions) for names from ``--tools``.

    Raises:
        UserError: an unknown name, or a toolkit whose extra is not installed.
    """
    options = options or {}
    out: list[Any] = []
    for name in names:
        if ":" in name:
            obj = _import_attr(name)
            out.append(obj() if inspect.isclass(obj) else obj)
            continue
        if name not in TOOLKITS:
            raise UserError(f"unknown toolkit {name!r}; known: {', '.join(TOOLKITS)}, or "
                            "module:attr for your own tools")
        module_name, cls_name, extra = TOOLKITS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            hint = f": pip install 'oss-agent[{extra}]'" if extra else ""
            raise UserError(f"toolkit {name!r} is not available ({exc.name} is missing){hint}") \
                from exc
        out.append(_construct(name, getattr(module, cls_name), options.get(name, {})))
    return out


def _construct(name: str, cls: Callable[..., Toolkit], opts: dict[str, Any]) -> Toolkit:
    if name == "browser":
        from toolkits.browser import BrowserConfig

        return cls(BrowserConfig(**opts))
    return cls(**opts)


def make_policy(ref: str | None) -> Policy:
    if ref is None:
        return Policy()
    load = getattr(Policy, "load", None)
    return load(ref) if load is not None else Policy.from_name(ref)


def limits_of(settings: Settings) -> RunLimits:
    return RunLimits(max_turns=settings.max_turns, deadline_s=settings.deadline_s)


def build_agent(settings: Settings, engine: Engine) -> Agent:
    """An agent from settings alone (``agent run "task"``, ``agent chat``)."""
    return Agent(
        engine,
        tools=make_toolkits(settings.tools, settings.toolkit_options),
        policy=make_policy(settings.policy),
        instructions=settings.instructions,
        system=SystemSettings(reasoning_effort=settings.reasoning),
        limits=limits_of(settings),
        sampling=SamplingParams(temperature=settings.temperature),
    )


def leaf_error(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


# -- recipes ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Recipe:
    path: Path
    module: ModuleType
    task: str
    script: list[str]

    def build(self, engine: Engine) -> Agent:
        agent = self.module.build_agent(engine)
        if not isinstance(agent, Agent):
            raise UserError(f"{self.path}: build_agent() returned {type(agent).__name__}, "
                            "not an Agent")
        return agent

    def scripted_engine(self) -> Engine:
        return scripted_engine(self.script)


def is_recipe(target: str) -> bool:
    return target.endswith(".py") and Path(target).is_file()


def load_recipe(path: str | Path) -> Recipe:
    """Import a recipe file. Raises UserError when it breaks the recipe convention."""
    path = Path(path).resolve()
    name = f"_oss_recipe_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up by name
    spec.loader.exec_module(module)
    missing = [a for a in ("TASK", "build_agent") if not hasattr(module, a)]
    if missing:
        raise UserError(f"{path}: a recipe defines TASK, SCRIPT and build_agent(engine); "
                        f"missing {', '.join(missing)}")
    return Recipe(path, module, str(module.TASK), list(getattr(module, "SCRIPT", [])))
