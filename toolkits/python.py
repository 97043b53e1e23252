"""The ``python`` toolkit: the stateful notebook gpt-oss was trained to expect.

The model sends code as the message body to ``python``; it runs in the run's own persistent
interpreter inside a sandbox (kind from the constructor or policy ``sandbox.kind``), so variables,
imports and files persist between calls. The reply is what a notebook cell shows: stdout, stderr,
the value of the last expression and a traceback trimmed to the model's code, capped at
``sandbox.output_bytes`` with a visible marker.

Files the code writes under ``/mnt/data`` are mirrored into the run's ``ctx.files_dir`` after
every call (and files already there are copied in at the first call), and listed in
``ToolReply.metadata["files"]``.

Example::

    async with PythonToolkit(pool_size=1) as python:
        async with python.session(ctx) as session:
            reply = await session.call(ToolCall("python", "python", None, "x = 1\\nx + 1"))
            assert reply.text == "2"
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import structlog

from policies.config import Policy, SandboxPolicy
from policies.run import RunPolicy
from sandboxes.base import ExecResult, Sandbox, SandboxKind, SandboxLimits
from sandboxes.pool import SandboxPool
from sandboxes.registry import sandbox_for
from toolkits.base import RunContext, ToolCall, Toolkit, ToolNamespace, ToolReply, ToolSession

log = structlog.get_logger(__name__)

_INSTRUCTIONS = (
    "Use this tool to execute Python code in your chain of thought. The code will not be shown "
    "to the user. This tool should be used for internal reasoning, but not for code that is "
    "intended to be visible to the user (e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a "
    "stateful Jupyter notebook environment. python will respond with the output of the "
    "execution or time out after {timeout} seconds. The drive at '/mnt/data' can be used to "
    "save and persist user files. Internet access for this session is {internet}."
)
_STATE_LOST = ("variables, imports and definitions are gone (files in /mnt/data are kept); "
               "run your setup code again")


def describe(timeout_s: float, network: bool) -> str:
    """The namespace text, stating the real timeout and network setting."""
    return _INSTRUCTIONS.format(timeout=repr(float(timeout_s)),
                                internet="enabled" if network else "disabled")


def call_timeout(policy: RunPolicy) -> float:
    return min(policy.config.sandbox.call_timeout_s, policy.timeout_for("python"))


class PythonToolkit(Toolkit):
    """``python`` backed by sandboxes of one kind, with an optional warm pool.

    ``kind`` overrides the policy's ``sandbox.kind``. The pool is built for ``policy`` (the
    toolkit-wide default); a run whose sandbox policy differs gets a sandbox made for it.
    """

    name = "python"

    def __init__(self, *, kind: SandboxKind | str | None = None, pool_size: int = 0,
                 policy: Policy | None = None, sweep: bool = True) -> None:
        self.kind = SandboxKind(kind) if kind is not None else None
        self.policy = policy or Policy()
        self.pool_size = pool_size
        self.sweep = sweep
        self._pool: SandboxPool | None = None

    def _kind_for(self, sandbox: SandboxPolicy) -> SandboxKind:
        return self.kind or SandboxKind(sandbox.kind)

    async def start(self) -> None:
        kind = self._kind_for(self.policy.sandbox)
        if self.sweep and kind is SandboxKind.DOCKER:
            import anyio.to_thread

            from sandboxes.docker import sweep

            await anyio.to_thread.run_sync(sweep)
        if self.pool_size > 0:
            self._pool = SandboxPool(lambda: sandbox_for(self.policy.sandbox, kind),
                                     size=self.pool_size)
            await self._pool.__aenter__()

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    @property
    def pool(self) -> SandboxPool | None:
        return self._pool

    def namespace(self, policy: RunPolicy | None = None) -> ToolNamespace:
        run = policy or RunPolicy(self.policy)
        text = describe(call_timeout(run), run.config.sandbox.network)
        return ToolNamespace(name="python", description=text, tools=(), placement="system")

    def session(self, ctx: RunContext) -> PythonSession:
        return PythonSession(self, ctx)

    async def acquire(self, sandbox: SandboxPolicy) -> Sandbox:
        """A started sandbox for a run: from the pool when its limits fit, else a new one."""
        kind = self._kind_for(sandbox)
        pooled = (self._pool is not None and kind is self._kind_for(self.policy.sandbox)
                  and SandboxLimits.from_policy(sandbox)
                  == SandboxLimits.from_policy(self.policy.sandbox))
        if pooled and self._pool is not None:
            return await self._pool.acquire()
        box = sandbox_for(sandbox, kind)
        try:
            await box.start()
        except BaseException:
            await box.aclose()
            raise
        return box


class PythonSession(ToolSession):
    """One run's interpreter; started at the first call, closed with the session."""

    def __init__(self, toolkit: PythonToolkit, ctx: RunContext) -> None:
        self.toolkit = toolkit
        self.ctx = ctx
        self.sandbox: Sandbox | None = None
        self.files_dir = Path(ctx.files_dir)
        # (mtime, size) of each file as last synced: files another tool (apply_patch) changed on
        # the host between calls are pushed again before the next call.
        self._synced: dict[str, tuple[int, int]] = {}

    async def aclose(self) -> None:
        box, self.sandbox = self.sandbox, None
        if box is not None:
            await box.aclose()

    async def call(self, call: ToolCall) -> ToolReply:
        policy = self.ctx.policy
        timeout = call_timeout(policy)
        for budget in ("python_wall_seconds", "python_cpu_seconds"):
            left = policy.remaining(budget)
            if left is not None and left <= 0:
                policy.charge(budget, 1e-9)  # raises PolicyDenied with the budget's message
        wall_left = policy.remaining("python_wall_seconds")
        if wall_left is not None:
            timeout = min(timeout, wall_left)
        if self.sandbox is None:
            self.sandbox = await self.toolkit.acquire(policy.config.sandbox)
            await self._push_files(self.sandbox)
        else:
            await self._push_files(self.sandbox, only_changed=True)
        started = time.monotonic()
        result = await self.sandbox.exec_code(call.arguments, timeout)
        elapsed = time.monotonic() - started
        self._charge("python_wall_seconds", elapsed)
        self._charge("python_cpu_seconds", result.cpu_s)
        if result.restarted:
            await self._push_files(self.sandbox)
        changed = self._mirror(result)
        self._synced = self._snapshot()
        log.info("python.call", run_id=self.ctx.run_id, wall_s=round(elapsed, 4),
                 timed_out=result.timed_out, restarted=result.restarted)
        text = format_result(result, timeout, policy.config.sandbox.output_bytes)
        return ToolReply(
            text=text, is_error=bool(result.error or result.timed_out or result.restarted),
            metadata=self._metadata(result, changed, elapsed),
        )

    def _charge(self, budget: str, amount: float) -> None:
        left = self.ctx.policy.remaining(budget)
        self.ctx.policy.charge(budget, amount if left is None else min(amount, left))

    def _metadata(self, result: ExecResult, changed: list[str], elapsed: float) -> dict[str, Any]:
        return {
            "files": sorted(str(p) for p in _regular_files(self.files_dir)),
            "files_changed": changed, "timed_out": result.timed_out,
            "restarted": result.restarted, "wall_s": elapsed, "cpu_s": result.cpu_s,
        }

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        snap = {}
        for path in _regular_files(self.files_dir):
            st = path.stat()
            snap[path.relative_to(self.files_dir).as_posix()] = (st.st_mtime_ns, st.st_size)
        return snap

    async def _push_files(self, box: Sandbox, *, only_changed: bool = False) -> None:
        limit = self.ctx.policy.config.sandbox.disk_mb * 1_000_000
        snap = self._snapshot()
        for rel, sig in snap.items():
            if only_changed and self._synced.get(rel) == sig:
                continue
            if sig[1] <= limit:
                await box.put_file(rel, (self.files_dir / rel).read_bytes())
        self._synced = snap

    def _mirror(self, result: ExecResult) -> list[str]:
        """Copy the sandbox's new files into files_dir without following any link."""
        changed = []
        root = self.files_dir
        for change in result.files:
            target = _safe_target(root, change.path)
            if target is None or change.data is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(change.data)
            changed.append(str(target))
        for rel in result.deleted:
            target = _safe_target(root, rel)
            if target is not None and target.is_file() and not target.is_symlink():
                target.unlink()
        return changed


def _safe_target(root: Path, rel: str) -> Path | None:
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        return None
    target = root.joinpath(*parts)
    # Refuse paths through a symlinked directory: the mirror writes inside files_dir only.
    parent = target.parent.resolve()
    if parent != root.resolve() and root.resolve() not in parent.parents:
        return None
    return target


def _regular_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def _cap(text: str, limit: int, what: str, dropped: int = 0) -> str:
    raw = text.encode()
    if len(raw) > limit:
        dropped += len(raw) - limit
        text = raw[:limit].decode("utf-8", "ignore")
    if dropped:
        text += f"\n[... {what} truncated: {dropped} more bytes not shown ...]\n"
    return text


def format_result(result: ExecResult, timeout: float, limit: int) -> str:
    """The cell's output as the model reads it."""
    parts = [
        _cap(result.stdout, limit, "output", result.stdout_dropped),
        _cap(result.stderr, limit, "stderr", result.stderr_dropped),
    ]
    if result.value is not None:
        parts.append(_cap(result.value, limit, "value") + "\n")
    if result.error:
        parts.append(_cap(result.error, limit, "traceback"))
    if result.restarted and result.timed_out:
        parts.append(f"TimeoutError: execution did not stop within {timeout:g} seconds, so the "
                     f"python interpreter was restarted: {_STATE_LOST}.\n")
    elif result.restarted:
        parts.append(f"The python interpreter stopped ({result.crash}) and was restarted: "
                     f"{_STATE_LOST}.\n")
    elif result.timed_out:
        parts.append("The cell was interrupted; the session is kept (variables and imports "
                     "are still defined).\n")
    text = "".join(p for p in parts if p)
    return _cap(text.rstrip("\n"), limit * 2, "output") or "(no output)"
