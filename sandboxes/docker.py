"""The Docker kind: one locked-down container per interpreter, spoken to over its attach stream.

The container is created, attached (stdin + stdout, before it starts, so no byte is missed) and
started; the interpreter inside keeps running, so a call is one frame each way over the hijacked
attach socket (about as fast as a pipe) instead of a ``docker exec`` or a ``docker run``.

Hardening: no network unless the policy allows it, memory (swap included), CPU and pids limits,
read-only root, size-limited tmpfs for ``/tmp`` and ``/mnt/data``, every capability dropped,
``no-new-privileges``, uid 1000, an init (tini) as pid 1, Docker's default seccomp profile, no
devices, no Docker socket, and only the allowlisted environment. ``stdin_once`` plus
``auto_remove`` make a container whose host went away exit and vanish on its own; the start-up
:func:`sweep` removes whatever was left by a process that no longer exists.
"""

from __future__ import annotations

import os
import socket
import struct
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import structlog

from agent.errors import SandboxError
from sandboxes.base import INTERPRETER_IN_SANDBOX, LABEL, Sandbox, SandboxKind, SandboxLimits
from sandboxes.image import IMAGE
from sandboxes.protocol import Transport

log = structlog.get_logger(__name__)
_FRAME = struct.Struct(">BxxxI")  # docker's multiplexed stream: kind, 3 pad bytes, length
_OWNER = "oss-agent.owner"


def _client() -> Any:
    import docker

    return docker.from_env(timeout=120)


def owner_id(pid: int | None = None) -> str:
    """Identifies a live process across pid reuse: boot id, pid, start time."""
    pid = pid or os.getpid()
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    return f"{socket.gethostname()}/{boot}/{pid}/{start}"


def _owner_alive(owner: str) -> bool:
    try:
        host, boot, pid, _start = owner.split("/")
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another machine's daemon client: not ours to judge
    try:
        return owner_id(int(pid)) == owner
    except (OSError, IndexError, ValueError):
        return False


def sweep(client: Any = None, *, everything: bool = False) -> list[str]:
    """Remove sandbox containers whose owning process is gone (or all of ours). Blocking."""
    import docker.errors

    client = client or _client()
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        owner = container.labels.get(_OWNER, "")
        if everything or not _owner_alive(owner):
            try:
                container.remove(force=True)
                removed.append(container.short_id)
            except docker.errors.APIError:
                continue
    if removed:
        log.info("sandbox.sweep", removed=removed)
    return removed


class DockerTransport(Transport):
    def __init__(self, client: Any, container: Any, stream: anyio.abc.SocketStream) -> None:
        self.client = client
        self.container = container
        self.stream = stream
        self._pending = bytearray()
        self._killed = False

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send(data)
        except (OSError, anyio.ClosedResourceError) as exc:
            raise anyio.BrokenResourceError from exc

    async def receive(self) -> bytes:
        while True:
            while len(self._pending) >= _FRAME.size:
                kind, size = _FRAME.unpack_from(self._pending)
                if len(self._pending) < _FRAME.size + size:
                    break
                payload = bytes(self._pending[_FRAME.size:_FRAME.size + size])
                del self._pending[:_FRAME.size + size]
                if kind == 1:
                    return payload
                log.debug("sandbox.stderr", text=payload[:2000].decode("utf-8", "replace"))
            try:
                self._pending += await self.stream.receive()
            except (OSError, anyio.ClosedResourceError) as exc:
                raise anyio.EndOfStream from exc

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        await self.stream.aclose()
        await anyio.to_thread.run_sync(self._remove)

    def _remove(self) -> None:
        import docker.errors

        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:  # "removal already in progress" and the like
            log.debug("sandbox.remove_failed", error=str(exc))

    async def exit_status(self) -> str:
        def status() -> str:
            import docker.errors

            try:
                self.container.reload()
                state = self.container.attrs["State"]
            except docker.errors.DockerException:
                return "the container exited"
            if state.get("OOMKilled"):
                return "killed: out of memory"
            code = state.get("ExitCode")
            return "still running" if state.get("Running") else f"exit code {code}"

        return await anyio.to_thread.run_sync(status)


class DockerSandbox(Sandbox):
    kind = SandboxKind.DOCKER

    def __init__(self, limits: SandboxLimits | None = None, *, image: str = IMAGE,
                 client: Any = None) -> None:
        super().__init__(limits)
        self.image = image
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client()
        return self._client

    def create_kwargs(self) -> dict[str, Any]:
        """Arguments of the low-level ``create_container`` (it alone knows ``stdin_once``)."""
        lim = self.limits
        disk = f"size={lim.disk_mb}m,uid=1000,gid=1000,mode=0700"
        host_config = self.client.api.create_host_config(
            network_mode="bridge" if lim.network else "none",
            mem_limit=f"{lim.memory_mb}m", memswap_limit=f"{lim.memory_mb}m",
            nano_cpus=int(lim.cpus * 1e9), pids_limit=lim.pids,
            read_only=True, tmpfs={"/tmp": disk, self.data_dir: disk},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True,
            ipc_mode="private", auto_remove=True,
        )
        return dict(
            image=self.image,
            command=["python3", "-I", "-u", INTERPRETER_IN_SANDBOX,
                     lim.interpreter_config(self.data_dir, {"nofile": 1024})],
            user="1000:1000", working_dir="/tmp", environment=lim.environment(),
            # detach=False with stdin_open is how docker-py spells StdinOnce (and attach).
            stdin_open=True, detach=False, tty=False, hostname="sandbox",
            labels={LABEL: "1", _OWNER: owner_id()}, host_config=host_config,
        )

    async def _spawn(self) -> Transport:
        import docker.errors

        api = self.client.api
        try:
            created = await anyio.to_thread.run_sync(
                partial(api.create_container, **self.create_kwargs()))
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot create a sandbox container from {self.image}: {exc}") from exc
        container = self.client.containers.prepare_model({"Id": created["Id"]})
        try:
            stream = await self._attach(container.id)
            await anyio.to_thread.run_sync(container.start)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(container.remove, force=True))
            raise
        return DockerTransport(self.client, container, stream)

    async def _attach(self, container_id: str) -> anyio.abc.SocketStream:
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        raw = await anyio.to_thread.run_sync(
            partial(self.client.api.attach_socket, container_id, params=params))
        sock = getattr(raw, "_sock", raw)
        if not isinstance(sock, socket.socket):
            raise SandboxError("the Docker attach stream is not a socket (unsupported DOCKER_HOST)")
        # The hijacked socket outlives the HTTP response object that wrapped it: keep our own.
        own = sock.dup()
        sock.close()
        return await anyio.abc.SocketStream.from_socket(own)
