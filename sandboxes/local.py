"""Sandboxes whose interpreter is a host subprocess: the pipe transport, and the local kind.

The local kind isolates nothing: code runs as the host user, sees the host's files and network.
It exists for development and trusted setups, and refuses to start unless the policy says
``sandbox.allow_local: true``. It gets its own process group, a private temp dir as its data dir
(``/mnt/data`` does not exist on the host) and the allowlisted environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence

import anyio
from anyio.abc import Process

from agent.errors import SandboxError, UserError
from sandboxes.base import INTERPRETER_PATH, Sandbox, SandboxKind, SandboxLimits
from sandboxes.protocol import Transport


class ProcessTransport(Transport):
    """The stdin/stdout pipes of a host process that leads its own process group."""

    def __init__(self, process: Process) -> None:
        self.process = process

    @classmethod
    async def spawn(cls, argv: Sequence[str], *, env: dict[str, str], cwd: str | None = None,
                    user: int | None = None) -> ProcessTransport:
        try:
            process = await anyio.open_process(
                list(argv), env=env, cwd=cwd, start_new_session=True, user=user,
                stderr=None if os.environ.get("OSS_AGENT_SANDBOX_DEBUG") else subprocess.DEVNULL,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start {argv[0]}: {exc}") from exc
        return cls(process)

    async def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise anyio.BrokenResourceError from exc

    async def receive(self) -> bytes:
        assert self.process.stdout is not None
        return await self.process.stdout.receive()

    async def kill(self) -> None:
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        with anyio.move_on_after(5):
            await self.process.wait()
        await self.process.aclose()

    async def exit_status(self) -> str:
        with anyio.move_on_after(1):
            await self.process.wait()
        code = self.process.returncode
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


class LocalSandbox(Sandbox):
    """An unsandboxed interpreter on the host (explicit opt-in only)."""

    kind = SandboxKind.LOCAL

    def __init__(self, limits: SandboxLimits | None = None, *, allow: bool = False,
                 python: str = sys.executable) -> None:
        if not allow:
            raise UserError(
                "the local sandbox runs model code unisolated on the host; "
                "set policy sandbox.allow_local: true to opt in"
            )
        super().__init__(limits)
        self.python = python
        self._dir = tempfile.mkdtemp(prefix="oss-agent-local-")
        self.data_dir = os.path.join(self._dir, "data")

    async def _spawn(self) -> Transport:
        rlimits = {"as_bytes": self.limits.memory_mb * 2**20,
                   "fsize_bytes": self.limits.disk_mb * 1_000_000}
        env = self.limits.environment() | {"HOME": self._dir, "TMPDIR": self._dir}
        argv = [self.python, "-I", "-u", str(INTERPRETER_PATH),
                self.limits.interpreter_config(self.data_dir, rlimits)]
        return await ProcessTransport.spawn(argv, env=env, cwd=self._dir)

    async def _cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
