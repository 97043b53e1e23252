"""``functions.apply_patch``: the tool as gpt-oss was trained to call it.

Declared in the developer message as a function tool whose single parameter is a string (see
:mod:`.instructions`); the model sends the raw patch as the message content, e.g.::

    <|channel|>commentary to=functions.apply_patch<|message|>*** Begin Patch
    *** Update File: app.py
    ...
    *** End Patch<|call|>

Models sometimes wrap the patch in JSON (``{"input": "..."}``, ``{"patch": "..."}``, a JSON
string) or a Markdown fence; those are unwrapped. The session applies patches one at a time
(a lock) in a worker thread, charges the bytes it writes to the ``apply_patch_bytes`` budget
before writing, and answers with the Codex summary (``Success. Updated the following files:``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import anyio
import anyio.to_thread
import structlog

from agent.errors import InvalidArguments, UnknownRecipient
from policies.run import RunPolicy
from toolkits.apply_patch.api import commit_plan, plan_patch
from toolkits.apply_patch.instructions import INSTRUCTIONS, PARAMETERS, TOOL_DESCRIPTION, TOOL_NAME
from toolkits.apply_patch.workspace import Workspace
from toolkits.base import (
    RunContext,
    ToolCall,
    Toolkit,
    ToolNamespace,
    ToolReply,
    ToolSession,
    ToolSpec,
)

log = structlog.get_logger(__name__)

_WRAPPER_KEYS = ("input", "patch", "patch_text", "text", "content", "diff", "code")
_BEGIN = "*** Begin Patch"


def _from_json(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(value.get(key), str):
                return str(value[key])
        strings = [v for v in value.values() if isinstance(v, str)]
        return strings[0] if len(strings) == 1 else None
    if isinstance(value, list):  # ["apply_patch", "<patch>"], the Codex shell form
        return next((v for v in value if isinstance(v, str) and _BEGIN in v), None)
    return None


def extract_patch_text(arguments: str) -> str:
    """The patch text of a call: raw, or unwrapped from JSON or a Markdown code fence.

    Raises:
        InvalidArguments: JSON that holds no patch text.
    """
    text = arguments.strip()
    if text.startswith(("{", "[", '"')):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        patch = _from_json(value)
        if patch is not None:
            return patch
        if value is not None or not text.startswith(("{", "[")):
            raise InvalidArguments(
                "apply_patch takes the raw patch text as its input (starting with "
                f"'{_BEGIN}'), not JSON; send the patch itself",
                recipient=f"functions.{TOOL_NAME}",
            )
    if text.startswith("```"):
        lines = text.split("\n")
        end = len(lines) - 1 if lines[-1].strip().startswith("```") else len(lines)
        return "\n".join(lines[1:end])
    return arguments


class ApplyPatchSession(ToolSession):
    """One run's patching: its workspace, its budget, one patch at a time."""

    def __init__(self, ctx: RunContext, limiter: anyio.CapacityLimiter | None) -> None:
        self.ctx = ctx
        self.config = ctx.policy.config.apply_patch
        self._limiter = limiter
        self._lock = anyio.Lock()
        self._workspace: Workspace | None = None

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self._limiter
        )

    async def start(self) -> None:
        root = self.config.workspace or self.ctx.files_dir
        self._workspace = await self._run(
            Workspace, root, allow=self.config.allow_paths, deny=self.config.deny_paths
        )

    async def call(self, call: ToolCall) -> ToolReply:
        if call.method != TOOL_NAME:
            raise UnknownRecipient(
                f"unknown function '{call.recipient}'; this toolkit has functions.{TOOL_NAME}",
                recipient=call.recipient,
            )
        text = extract_patch_text(call.arguments)
        async with self._lock:
            if self._workspace is None:
                await self.start()
            assert self._workspace is not None
            plan = await self._run(
                plan_patch, text, self._workspace, max_patch_bytes=self.config.max_patch_bytes
            )
            self.ctx.policy.charge("apply_patch_bytes", plan.bytes_written)
            result = await self._run(commit_plan, plan)
        log.info(
            "apply_patch.applied", run_id=self.ctx.run_id, files=len(result.changes),
            bytes=result.bytes_written, fuzz=result.fuzz,
        )
        return ToolReply(
            result.summary(),
            metadata={
                "added": result.added,
                "updated": result.updated,
                "deleted": result.deleted,
                "moved": result.moved,
                "fuzz": result.fuzz,
                "bytes_written": result.bytes_written,
            },
        )


class ApplyPatchToolkit(Toolkit):
    """``functions.apply_patch``, rendered in the developer message.

    ``namespace().description`` holds the instructions text; the Harmony renderer must place it
    in the developer message's ``# Instructions`` (as gpt-oss's chat.py does), not as a comment
    above ``namespace functions``.

    Example::

        async with ApplyPatchToolkit() as toolkit, toolkit.session(ctx) as session:
            reply = await session.call(ToolCall("functions.apply_patch", "functions",
                                                "apply_patch", patch_text))
    """

    name = "functions"

    def __init__(self, *, max_threads: int = 4) -> None:
        self.max_threads = max_threads
        self._limiter: anyio.CapacityLimiter | None = None

    async def start(self) -> None:
        self._limiter = anyio.CapacityLimiter(self.max_threads)

    def namespace(self, policy: RunPolicy | None = None) -> ToolNamespace:
        spec = ToolSpec(TOOL_NAME, TOOL_DESCRIPTION, parameters=PARAMETERS)
        return ToolNamespace(self.name, INSTRUCTIONS, (spec,), placement="developer")

    def session(self, ctx: RunContext) -> ApplyPatchSession:
        return ApplyPatchSession(ctx, self._limiter)
