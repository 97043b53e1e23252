"""Tasks as scripts: Harmony text for the assistant's turns, each written from the real replies.

A :class:`Task` answers "what does the assistant write next, given the tool replies so far?".
:func:`task_engine` turns it into a ``FunctionEngine``: the prompt's tool replies (after the
user's message) are read back and handed to ``Task.respond``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.engine.scripted import FunctionEngine
from agent.harmony.codec import HarmonyCodec

_TOOL_HEADER = re.compile(r"^(?P<author>[\w.]+) to=assistant")


@dataclass(frozen=True, slots=True)
class Reply:
    author: str  # e.g. "python", "browser.open", "functions.get_weather"
    text: str


@dataclass
class Task:
    """One sampled task: the user's message, its ground truth and the assistant's script.

    ``respond(replies)`` returns the next completion as Harmony text; ``check(final, files)``
    says whether the run's final answer (and the files it left) are right.
    """

    family: str
    prompt: str
    answer: str
    respond: Callable[[list[Reply]], str]
    check: Callable[[str, Mapping[str, str]], bool]
    files: dict[str, str] = field(default_factory=dict)  # seeded into the run's /mnt/data
    instructions: str | None = None  # the developer message's text
    tools: list[Callable[..., Any]] = field(default_factory=list)  # @tool functions
    recording: list[dict[str, Any]] = field(default_factory=list)  # the browser's whole web


def tool_replies(prompt: str) -> list[Reply]:
    """The tool messages after the last user message of a decoded prompt."""
    turn = prompt.rsplit("<|start|>user<|message|>", 1)[-1]
    replies = []
    for part in turn.split("<|start|>")[1:]:
        match = _TOOL_HEADER.match(part)
        if match is None or "<|message|>" not in part:
            continue
        body = part.split("<|message|>", 1)[1]
        replies.append(Reply(match["author"], body.removesuffix("<|end|>")))
    return replies


def task_engine(task: Task, codec: HarmonyCodec) -> FunctionEngine:
    return FunctionEngine(lambda prompt: task.respond(tool_replies(prompt)), codec=codec)


# -- Harmony text the assistant writes ---------------------------------------------------------
def think(text: str) -> str:
    """An analysis message that continues into another message of the same completion."""
    return f"<|channel|>analysis<|message|>{text}<|end|><|start|>assistant"


def call_code(code: str, channel: str = "analysis") -> str:
    return f"<|channel|>{channel} to=python code<|message|>{code}<|call|>"


def call_json(recipient: str, args: Mapping[str, object], channel: str = "commentary") -> str:
    return (f"<|channel|>{channel} to={recipient} <|constrain|>json<|message|>"
            f"{json.dumps(dict(args), ensure_ascii=False)}<|call|>")


def call_patch(patch: str) -> str:
    return f"<|channel|>commentary to=functions.apply_patch code<|message|>{patch}<|call|>"


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


def gave_up(reason: str) -> str:
    """What the script says when a reply is not what it expected (the example is rejected)."""
    return final(f"I could not finish: {reason}")
