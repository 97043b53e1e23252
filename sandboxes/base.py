"""The sandbox interface: one persistent interpreter, isolated, with limits.

A :class:`Sandbox` starts the interpreter helper (``sandboxes/interpreter.py``) somewhere isolated
and talks to it over attached stdin/stdout. Kinds differ only in how they spawn it
(:meth:`Sandbox._spawn`); state handling, timeouts and restarts are shared here.

Example::

    async with DockerSandbox(SandboxLimits.from_policy(policy.sandbox)) as box:
        result = await box.exec_code("x = 41\\nx + 1", timeout=10)
        assert result.value == "42"

Failure modes of :meth:`Sandbox.exec_code` are results, not exceptions: a timeout interrupts the
code and keeps the globals (``timed_out``); code that cannot be interrupted, or an interpreter
that dies, gets a fresh interpreter (``restarted`` with ``crash`` saying why). Only a sandbox that
cannot be started at all raises :class:`agent.errors.SandboxError`.
"""

from __future__ import annotations

import abc
import base64
import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import anyio
import structlog

from agent.errors import SandboxError
from sandboxes.protocol import FrameChannel, Transport, kill_quietly

if TYPE_CHECKING:
    from policies.config import SandboxPolicy

log = structlog.get_logger(__name__)

#: The helper on the host; bubblewrap and local sandboxes run it from here, images carry a copy.
INTERPRETER_PATH = Path(__file__).with_name("interpreter.py")
#: Where the helper lives inside an image or a bubblewrap root.
INTERPRETER_IN_SANDBOX = "/opt/oss-agent/interpreter.py"
#: Label/marker carried by everything a sandbox creates, for the start-up sweep.
LABEL = "oss-agent.sandbox"


class SandboxKind(enum.StrEnum):
    DOCKER = "docker"
    BUBBLEWRAP = "bubblewrap"
    LOCAL = "local"


class SandboxState(enum.Enum):
    NEW = "new"
    READY = "ready"
    BUSY = "busy"
    BROKEN = "broken"  # a call was cancelled mid-flight: the next call restarts first
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What a sandbox enforces; built from the policy's ``sandbox`` section."""

    network: bool = False
    memory_mb: int = 1024
    cpus: float = 1.0
    pids: int = 128
    disk_mb: int = 512
    output_bytes: int = 20_000
    start_timeout_s: float = 60.0
    kill_grace_s: float = 2.0  # after a timeout, how long code may ignore the interrupt
    env_allowlist: tuple[str, ...] = ("TZ",)

    @classmethod
    def from_policy(cls, policy: SandboxPolicy, **overrides: Any) -> SandboxLimits:
        return cls(
            network=policy.network, memory_mb=policy.memory_mb, cpus=policy.cpus,
            pids=policy.pids, disk_mb=policy.disk_mb, output_bytes=policy.output_bytes,
            **overrides,
        )

    def environment(self) -> dict[str, str]:
        """The sandbox's whole environment: fixed values plus allowlisted host variables."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
            "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
        }
        env.update({k: os.environ[k] for k in self.env_allowlist if k in os.environ})
        return env

    def interpreter_config(self, data_dir: str, rlimits: dict[str, int] | None = None) -> str:
        import json

        return json.dumps({
            "data_dir": data_dir, "output_bytes": self.output_bytes,
            "max_file_bytes": self.disk_mb * 1_000_000, "limits": rlimits or {},
        })


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str  # relative to the data dir
    size: int
    data: bytes | None  # None when the file is larger than the transfer limit


@dataclass(frozen=True, slots=True)
class ExecResult:
    stdout: str = ""
    stderr: str = ""
    stdout_dropped: int = 0  # bytes past the output cap, discarded inside the sandbox
    stderr_dropped: int = 0
    value: str | None = None  # repr of the last expression, as a notebook shows it
    error: str | None = None  # traceback trimmed to the user's code
    timed_out: bool = False
    restarted: bool = False  # the interpreter was replaced: globals are gone
    crash: str | None = None  # why it was replaced
    wall_s: float = 0.0
    cpu_s: float = 0.0
    files: tuple[FileChange, ...] = ()
    deleted: tuple[str, ...] = ()


@dataclass(slots=True)
class _Live:
    transport: Transport
    channel: FrameChannel
    info: dict[str, Any] = field(default_factory=dict)


class Sandbox(abc.ABC):
    """One isolated interpreter, restarted in place when it dies."""

    kind: ClassVar[SandboxKind]
    #: The data dir as the interpreter sees it.
    data_dir: str = "/mnt/data"

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.state = SandboxState.NEW
        self._live: _Live | None = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def _spawn(self) -> Transport:
        """Start an isolated interpreter process and return its transport."""

    async def _cleanup(self) -> None:  # noqa: B027 - optional hook
        """Release kind-specific resources after the last interpreter is gone."""

    async def start(self) -> None:
        """Start the interpreter and wait until it answers. Raises SandboxError."""
        transport = await self._spawn()
        channel = FrameChannel(transport, max_frame=2 * self.limits.disk_mb * 1_000_000 + 2**24)
        try:
            with anyio.fail_after(self.limits.start_timeout_s):
                ready = await channel.receive()
        except (TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, SandboxError) as exc:
            status = await transport.exit_status()
            await kill_quietly(transport)
            raise SandboxError(f"{self.kind} sandbox did not start ({status})") from exc
        except BaseException:
            await kill_quietly(transport)
            raise
        self._live = _Live(transport, channel, ready)
        self.state = SandboxState.READY
        log.debug("sandbox.ready", kind=str(self.kind), pid=ready.get("pid"))

    async def restart(self) -> None:
        """Replace the interpreter with a fresh one (all state is lost)."""
        if self._live is not None:
            await kill_quietly(self._live.transport)
            self._live = None
        await self.start()

    async def exec_code(self, code: str, timeout: float) -> ExecResult:
        """Run ``code`` in the persistent interpreter, at most ``timeout`` seconds."""
        async with self._lock:
            lost: str | None = None
            if self.state is SandboxState.BROKEN or self._live is None:
                lost = "the previous call was cancelled before it finished"
                await self.restart()
            assert self._live is not None
            self.state = SandboxState.BUSY
            try:
                result = await self._exchange(self._live, code, timeout)
            except BaseException:
                self.state = SandboxState.BROKEN  # cancelled mid-call: unknown interpreter state
                raise
            self.state = SandboxState.READY
            if lost and not result.restarted:
                result = _replace(result, restarted=True, crash=lost)
            return result

    async def _exchange(self, live: _Live, code: str, timeout: float) -> ExecResult:
        await live.channel.send({"op": "exec", "code": code, "timeout": timeout})
        crash: str | None = None
        with anyio.move_on_after(timeout + self.limits.kill_grace_s):
            try:
                return _result(await live.channel.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError, SandboxError) as exc:
                crash = str(exc) if isinstance(exc, SandboxError) else None
        timed_out = crash is None and not await _ended(live)
        status = "did not stop after the time limit" if timed_out else (
            crash or await live.transport.exit_status())
        log.info("sandbox.replace", kind=str(self.kind), reason=status)
        await self.restart()
        return ExecResult(timed_out=timed_out, restarted=True, crash=status)

    async def put_file(self, path: str, data: bytes) -> None:
        """Write a user file into the data dir (relative ``path``)."""
        async with self._lock:
            if self._live is None:
                await self.restart()
            assert self._live is not None
            await self._live.channel.send(
                {"op": "put", "path": path, "data": base64.b64encode(data).decode()})
            reply = await self._live.channel.receive()
            if not reply.get("ok"):
                raise SandboxError(f"cannot put {path!r}: {reply.get('error')}")

    async def aclose(self) -> None:
        """Kill the interpreter and free everything; safe to call twice."""
        if self.state is SandboxState.CLOSED:
            return
        self.state = SandboxState.CLOSED
        live, self._live = self._live, None
        with anyio.CancelScope(shield=True):
            if live is not None:
                await live.transport.kill()
            await self._cleanup()


async def _ended(live: _Live) -> bool:
    """Did the interpreter exit (rather than hang)? Probe the stream without blocking long."""
    with anyio.move_on_after(0.05):
        try:
            await live.transport.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True
    return False


def _result(reply: dict[str, Any]) -> ExecResult:
    files = tuple(
        FileChange(str(f["path"]), int(f.get("size", 0)),
                   base64.b64decode(f["data"]) if "data" in f else None)
        for f in reply.get("files", ())
    )
    return ExecResult(
        stdout=str(reply.get("stdout", "")), stderr=str(reply.get("stderr", "")),
        stdout_dropped=int(reply.get("stdout_dropped", 0)),
        stderr_dropped=int(reply.get("stderr_dropped", 0)),
        value=reply.get("value"), error=reply.get("error"),
        timed_out=bool(reply.get("timed_out")), wall_s=float(reply.get("wall_s", 0.0)),
        cpu_s=float(reply.get("cpu_s", 0.0)), files=files,
        deleted=tuple(str(p) for p in reply.get("deleted", ())),
    )


def _replace(result: ExecResult, **changes: Any) -> ExecResult:
    from dataclasses import replace

    return replace(result, **changes)
