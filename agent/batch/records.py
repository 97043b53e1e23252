"""Runs as JSON: events, the completions a run decoded (to replay it), saved transcripts.

A transcript file (``agent run --transcript FILE``, ``/save`` in ``agent chat``) is one JSON
object::

    {"version": 1, "task": ..., "engine": ..., "conversation": <openai-harmony JSON>,
     "completions": ["<|channel|>...<|call|>", ...], "events": [...], "result": {...}}

``completions`` are the model's turns as Harmony text, so ``--engine scripted:FILE`` replays the
run exactly.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openai_harmony as oh

from agent.events import Event, FormatError, MessageDone, RunFinished, TurnFinished
from agent.harmony.parser import ParsedMessage

TRANSCRIPT_VERSION = 1


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict of an event (the final RunFinished is reduced to its stop reason)."""
    if isinstance(event, RunFinished):
        return {"kind": event.kind, "stop_reason": event.result.stop_reason.value}
    return _plain(event)  # type: ignore[no-any-return]


def harmony_text(message: ParsedMessage) -> str:
    """A parsed message as the model wrote it."""
    header = f"<|channel|>{message.channel}"
    if message.recipient:
        header += f" to={message.recipient}"
    if message.content_type:
        header += f" {message.content_type}"  # "<|constrain|>json", or "code" as written
    return f"{header}<|message|>{message.text}<|{message.end}|>"


class CompletionRecorder:
    """Collects each turn's completion (as Harmony text) from a run's events."""

    def __init__(self) -> None:
        self.completions: list[str] = []
        self._messages: list[str] = []
        self._raw: str | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, MessageDone):
            self._messages.append(harmony_text(event.message))
        elif isinstance(event, FormatError):
            self._raw = event.raw_text
        elif isinstance(event, TurnFinished):
            # MessageDone comes after TurnFinished: a turn closes when the next one starts.
            self._flush()

    def _flush(self) -> None:
        if self._raw is not None:
            self.completions.append(self._raw)
        elif self._messages:
            self.completions.append("<|start|>assistant".join(self._messages))
        self._messages, self._raw = [], None

    def finish(self) -> list[str]:
        self._flush()
        return self.completions


def conversation_json(messages: Sequence[oh.Message]) -> Any:
    return json.loads(oh.Conversation.from_messages(list(messages)).to_json())


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing (temp file + rename), so a crash never leaves half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_transcript(path: Path, *, task: str | None, engine: str | None,
                    messages: Sequence[oh.Message], completions: Sequence[str],
                    events: Sequence[dict[str, Any]], result: dict[str, Any] | None) -> None:
    data = {
        "version": TRANSCRIPT_VERSION, "task": task, "engine": engine,
        "conversation": conversation_json(messages), "completions": list(completions),
        "events": list(events), "result": result,
    }
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
