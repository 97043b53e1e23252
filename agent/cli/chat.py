"""``agent chat``: a multi-turn conversation in the terminal.

One transcript carries the whole conversation, so each turn extends the previous prompt and the
engine reuses its cache (the usage line shows the reused tokens). Ctrl-C stops the current turn
(the conversation goes back to where it was before it) and keeps the session; Ctrl-D or /exit
ends it. Commands: /reset, /tools, /policy, /save FILE, /help, /exit.
"""

from __future__ import annotations

import argparse
import json
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
from rich.console import Console

from agent.batch.records import CompletionRecorder, event_to_dict, save_transcript
from agent.cli.common import (
    add_agent_flags,
    build_agent,
    leaf_error,
    open_engine,
    settings_from_args,
)
from agent.cli.display import RunDisplay
from agent.errors import AgentRunError
from agent.harmony.transcript import Transcript
from agent.runner import Agent
from policies.run import RunPolicy

HELP = ("/reset  forget the conversation   /tools  list the tools   /policy  show the policy\n"
        "/save FILE  save the conversation   /exit  leave (or Ctrl-D)   Ctrl-C  stop a turn")


def register(sub: Any) -> None:
    p = sub.add_parser("chat", help="talk with an agent in the terminal",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("-v", "--verbose", action="count", default=0)
    add_agent_flags(p)
    p.set_defaults(handler=handle)


class ChatSession:
    """The conversation state; every method but ``turn`` runs in the terminal's thread."""

    def __init__(self, agent: Agent, console: Console, verbose: int, engine_spec: str) -> None:
        self.agent = agent
        self.console = console
        self.display = RunDisplay(console, verbose=verbose)
        self.engine_spec = engine_spec
        self.reset()

    def reset(self) -> None:
        self.session_id = uuid.uuid4().hex[:12]  # the engine keeps one cache per conversation
        self.transcript = Transcript(self.agent.codec, self.agent.opening(None, RunPolicy(
            self.agent.policy)))
        self.recorder = CompletionRecorder()
        self.events: list[dict[str, Any]] = []
        self.turns = 0
        self._kept = 0

    async def turn(self, text: str) -> None:
        self._kept = len(self.recorder.finish())  # completions of the finished turns
        async for event in self.agent.stream(text, run_id=self.session_id,
                                             transcript=self.transcript):
            self.display(event)
            self.recorder(event)
            self.events.append(event_to_dict(event))
        self.turns += 1

    def rollback(self, n_messages: int) -> None:
        """Forget a stopped turn: the prompt must end where the last finished turn ended."""
        self.transcript = Transcript(self.agent.codec, self.transcript.messages[:n_messages])
        del self.recorder.finish()[self._kept:]

    def command(self, line: str) -> bool:
        """Handle a /command; False means leave."""
        name, _, arg = line.partition(" ")
        if name in ("/exit", "/quit"):
            return False
        if name == "/reset":
            self.reset()
            self.console.print("[dim]conversation reset[/]")
        elif name == "/tools":
            for ns in self.agent.namespaces():
                tools = ", ".join(t.name for t in ns.tools) or "(called directly)"
                self.console.print(f"[bold]{ns.name}[/]: {tools}")
            if not self.agent.toolkits:
                self.console.print("[dim]no tools (start with --tools browser,python,...)[/]")
        elif name == "/policy":
            policy = self.agent.policy
            self.console.print(f"[bold]{policy.name}[/] default={policy.default.value} "
                               f"rules={json.dumps({k: v.value for k, v in policy.rules.items()})}")
        elif name == "/save":
            self.save(Path(arg.strip() or f"chat-{self.session_id}.json"))
        else:
            self.console.print(HELP)
        return True

    def save(self, path: Path) -> None:
        save_transcript(path, task=None, engine=self.engine_spec,
                        messages=self.transcript.messages,
                        completions=list(self.recorder.finish()), events=self.events,
                        result=None)
        self.console.print(f"[dim]saved {len(self.transcript.messages)} messages to {path}[/]")


def _wait(portal: BlockingPortal, future: Future[None], session: ChatSession,
          n_messages: int) -> None:
    try:
        future.result()
    except KeyboardInterrupt:
        future.cancel()
        try:
            future.result(timeout=30)
        except BaseException:  # noqa: S110 - the turn is being dropped whatever it raised
            pass
        session.rollback(n_messages)
        session.display._end_stream()
        session.console.print("[yellow]turn stopped[/] [dim](dropped from the conversation)[/]")
    except (AgentRunError, BaseExceptionGroup) as exc:
        leaf = leaf_error(exc)
        if not isinstance(leaf, AgentRunError):
            raise leaf from exc
        session.rollback(n_messages)
        session.console.print(f"[red]the turn failed:[/] {leaf}")


def _loop(portal: BlockingPortal, session: ChatSession, console: Console) -> None:
    while True:
        try:
            line = console.input("[bold green]you>[/] ").strip()
        except KeyboardInterrupt:
            console.print("\n[dim](Ctrl-D or /exit to leave)[/]")
            continue
        except EOFError:
            console.print()
            return
        if not line:
            continue
        if line.startswith("/"):
            if not session.command(line):
                return
            continue
        before = len(session.transcript.messages)
        _wait(portal, portal.start_task_soon(session.turn, line), session, before)


def handle(args: argparse.Namespace) -> int:
    resolved = settings_from_args(args)
    engine = open_engine(resolved.values)
    agent = build_agent(resolved.values, engine)
    console = Console(highlight=False)
    if agent.approver is None:  # `ask` rules are put to the person at the terminal
        from policies import TerminalApprover

        agent.approver = TerminalApprover(console)
    with start_blocking_portal() as portal:
        portal.call(agent.__aenter__)
        try:
            session = ChatSession(agent, console, args.verbose, resolved.values.engine or "")
            console.print(f"[dim]oss-agent chat - engine {resolved.values.engine}. /help for "
                          "commands, Ctrl-C stops a turn, Ctrl-D leaves.[/]")
            _loop(portal, session, console)
        finally:
            portal.call(agent.__aexit__, None, None, None)
            portal.call(engine.aclose)
    return 0

