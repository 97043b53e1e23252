"""``agent run``: one task (text or a recipe file), streamed to the terminal.

Exit codes (scripts may rely on them):

    0    the run ended with a final answer
    1    the run ended without one (turn/token/time limit, too many tool errors, no action)
    2    usage or configuration error (bad flag, engine spec, policy file, recipe)
    3    the run failed: the engine or a sandbox broke (AgentRunError)
    130  interrupted (Ctrl-C)

The answer goes to stdout; the live stream (analysis, tool calls, usage) to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import structlog
from rich.console import Console

from agent.batch.records import CompletionRecorder, event_to_dict, save_transcript
from agent.cli.common import (
    Recipe,
    add_agent_flags,
    build_agent,
    is_recipe,
    leaf_error,
    limits_of,
    load_recipe,
    make_policy,
    open_engine,
    settings_from_args,
)
from agent.cli.display import RunDisplay
from agent.engine.base import Engine
from agent.errors import AgentRunError, UserError
from agent.events import RunResult, StopReason
from agent.harmony.codec import SystemSettings
from agent.runner import Agent
from agent.settings import ResolvedSettings

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_NO_ANSWER, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EPILOG = """exit codes: 0 final answer, 1 run ended without an answer, 2 usage/config error,
3 engine or sandbox failure, 130 interrupted"""


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run one task or a recipe file, streaming its progress",
                       description=__doc__.split("\n\n")[0], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="the task text, '-' to read it from stdin, or a recipe .py")
    p.add_argument("task", nargs="?", help="with a recipe: a task instead of its TASK")
    p.add_argument("--json", action="store_true", help="print the result object as JSON")
    p.add_argument("--transcript", type=Path, metavar="FILE",
                   help="save the run (Harmony messages, completions, events) to FILE; "
                   "replay it with --engine scripted:FILE")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="show tool arguments and outputs whole (-vv: everything)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the answer")
    add_agent_flags(p)
    p.set_defaults(handler=handle)


def recipe_main(path: str, argv: list[str] | None = None) -> int:
    """``python recipes/x.py [flags]`` is ``agent run recipes/x.py [flags]``."""
    from agent.cli import main

    return main(["run", path, *(sys.argv[1:] if argv is None else argv)])


def _task(args: argparse.Namespace, recipe: Recipe | None) -> str:
    if recipe is not None:
        return args.task or recipe.task
    if args.task:
        raise UserError(f"{args.target!r} is not a recipe file; put the task in one argument")
    if args.target == "-":
        return sys.stdin.read().strip()
    return str(args.target)


def _engine(resolved: ResolvedSettings, recipe: Recipe | None, console: Console) -> Engine:
    if resolved.values.engine or recipe is None:
        return open_engine(resolved.values)
    if not recipe.script:
        raise UserError(f"{recipe.path} has no SCRIPT; pass --engine SPEC")
    console.print(f"[yellow]engine: scripted[/] - replaying {recipe.path.name}'s SCRIPT, no model "
                  "involved; pass --engine SPEC (or set OSS_AGENT_ENGINE) to use a real one")
    return recipe.scripted_engine()


def _apply_flags(agent: Agent, args: argparse.Namespace, resolved: ResolvedSettings) -> None:
    """A recipe builds its own agent; settings given as flags still win over it."""
    flagged = {k for k, v in resolved.sources.items() if v == "flag"}
    if "policy" in flagged:
        agent.policy = make_policy(resolved.values.policy)
    if flagged & {"max_turns", "deadline_s"}:
        agent.limits = limits_of(resolved.values)
    if "reasoning" in flagged:
        agent.system = agent.system.model_copy(update={"reasoning_effort": args.reasoning})
    if "instructions" in flagged:
        agent.instructions = resolved.values.instructions


def _approver(agent: Agent, console: Console) -> None:
    if agent.approver is not None:
        return
    from policies import AutoApprover, TerminalApprover

    interactive = sys.stdin.isatty()
    agent.approver = (TerminalApprover(console) if interactive
                      else AutoApprover(agent.policy.approval))


async def _stream(agent: Agent, engine: Engine, task: str, display: RunDisplay,
                  transcript: Path | None, spec: str | None) -> RunResult:
    recorder = CompletionRecorder()
    events: list[dict[str, Any]] = []
    result: RunResult | None = None
    try:
        async with agent:
            async for event in agent.stream(task):
                display(event)
                if transcript is not None:
                    recorder(event)
                    events.append(event_to_dict(event))
                if event.kind == "finished":
                    result = event.result
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()
    assert result is not None
    if transcript is not None:
        save_transcript(transcript, task=task, engine=spec, messages=result.messages,
                        completions=recorder.finish(), events=events, result=result.to_dict())
    return result


def handle(args: argparse.Namespace) -> int:
    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False)
    resolved = settings_from_args(args)
    recipe = load_recipe(args.target) if is_recipe(args.target) else None
    task = _task(args, recipe)
    if not task:
        raise UserError("empty task")
    engine = _engine(resolved, recipe, err)
    if recipe is not None:
        agent = recipe.build(engine)
        _apply_flags(agent, args, resolved)
    else:
        agent = build_agent(resolved.values, engine)
        agent.system = SystemSettings(reasoning_effort=resolved.values.reasoning)
    _approver(agent, err)
    live = Console(stderr=True, highlight=False, quiet=args.quiet)
    answer = Console(stderr=True, highlight=False, quiet=args.quiet) if args.json else out
    display = RunDisplay(live, answer, verbose=args.verbose)
    spec = resolved.values.engine or (f"scripted ({recipe.path.name} SCRIPT)" if recipe else None)
    try:
        result = anyio.run(_stream, agent, engine, task, display, args.transcript, spec)
    except (AgentRunError, BaseExceptionGroup) as exc:  # Agent.stream's task group wraps errors
        leaf = leaf_error(exc)
        if not isinstance(leaf, AgentRunError):
            raise leaf from exc
        err.print(f"[red]agent: run failed:[/] {leaf}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    return EXIT_OK if result.stop_reason is StopReason.FINAL else EXIT_NO_ANSWER
