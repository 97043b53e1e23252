"""``agent render``: show the exact prompt a conversation renders to, and its token count."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import openai_harmony as oh
from rich.console import Console

from agent.errors import UserError
from agent.harmony.codec import HarmonyCodec, SystemSettings
from toolkits.base import ToolNamespace, ToolSpec


def register(sub: Any) -> None:
    p = sub.add_parser(
        "render", help="print the rendered Harmony prompt of a conversation",
        description="Render a conversation (openai-harmony JSON from FILE or '-' for stdin, or "
        "built from flags) and print it with its token count.",
    )
    p.add_argument("file", nargs="?", help="conversation JSON (Conversation.to_json()); '-' = stdin")
    p.add_argument("--mode", choices=["completion", "conversation", "training"],
                   default="completion", help="render for the next assistant turn (default), "
                   "as a whole conversation, or for training")
    p.add_argument("--tokens", action="store_true", help="also print the token ids")
    p.add_argument("--user", help="build a conversation with this user message")
    p.add_argument("--developer", help="developer instructions")
    p.add_argument("--reasoning", choices=["low", "medium", "high"], default="medium")
    p.add_argument("--date", help="conversation start date (default: today)")
    p.add_argument("--browser", action="store_true", help="declare the browser tool")
    p.add_argument("--python", action="store_true", help="declare the python tool")
    p.add_argument("--function", action="append", default=[], metavar="JSON",
                   help='a function tool: {"name":..., "description":..., "parameters":{...}}')
    p.set_defaults(handler=run)


def _from_file(source: str) -> list[oh.Message]:
    text = sys.stdin.read() if source == "-" else _read(Path(source))
    try:
        return list(oh.Conversation.from_json(text).messages)
    except Exception as exc:  # the Rust/pydantic layers raise several types for bad JSON
        raise UserError(f"{source}: not a Harmony conversation in JSON ({exc})") from exc


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc


def _from_flags(args: argparse.Namespace, codec: HarmonyCodec) -> list[oh.Message]:
    spaces: list[ToolNamespace] = []
    if args.browser:
        spaces.append(_builtin(oh.ToolNamespaceConfig.browser()))
    if args.python:
        spaces.append(_builtin(oh.ToolNamespaceConfig.python()))
    functions = []
    for raw in args.function:
        try:
            spec = json.loads(raw)
            functions.append(ToolSpec(spec["name"], spec.get("description", ""),
                                      spec.get("parameters")))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"--function {raw!r}: expected JSON with at least a name ({exc})") \
                from exc
    if functions:
        spaces.append(ToolNamespace("functions", None, tuple(functions), "developer"))
    settings = SystemSettings(reasoning_effort=args.reasoning, conversation_start_date=args.date)
    messages = [codec.system_message(settings, spaces)]
    developer = codec.developer_message(args.developer, spaces)
    if developer is not None:
        messages.append(developer)
    if args.user:
        messages.append(oh.Message.from_role_and_content(oh.Role.USER, args.user))
    return messages


def _builtin(cfg: oh.ToolNamespaceConfig) -> ToolNamespace:
    tools = tuple(ToolSpec(t.name, t.description, t.parameters) for t in cfg.tools)
    return ToolNamespace(cfg.name, cfg.description, tools, "system")


def run(args: argparse.Namespace) -> int:
    codec = HarmonyCodec()
    messages = _from_file(args.file) if args.file else _from_flags(args, codec)
    if args.mode == "completion":
        tokens = codec.render_for_completion(messages)
    elif args.mode == "conversation":
        tokens = codec.render_conversation(messages)
    else:
        tokens = codec.render_for_training(messages)
    console = Console(highlight=False, soft_wrap=True)
    console.out(codec.decode(tokens))
    console.print(f"[dim]-- {len(tokens)} tokens ({args.mode})[/dim]", markup=True)
    if args.tokens:
        console.out(json.dumps(tokens))
    return 0
