"""The host side of the interpreter protocol: a byte transport and length-prefixed JSON frames.

Each sandbox kind only has to give a :class:`Transport` to the interpreter process's attached
stdin/stdout (a pipe for bubblewrap and local, a hijacked attach socket for Docker); framing,
limits and decoding are shared here. See ``sandboxes/interpreter.py`` for the other end.
"""

from __future__ import annotations

import abc
import json
import struct
from typing import Any

import anyio

from agent.errors import SandboxError

_HEADER = struct.Struct(">I")


class Transport(abc.ABC):
    """A bidirectional byte stream to one interpreter process, plus a way to kill it."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Write all of ``data``; raises anyio.BrokenResourceError when the process is gone."""

    @abc.abstractmethod
    async def receive(self) -> bytes:
        """Some bytes of the process's stdout; raises anyio.EndOfStream when it has exited."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """Stop the process (and everything it started) now; never raises; idempotent."""

    async def exit_status(self) -> str:
        """A short description of how the process ended, for the model and the logs."""
        return "exited"


class FrameChannel:
    """Length-prefixed JSON frames over a :class:`Transport`.

    ``max_frame`` bounds what a misbehaving sandbox can make the host buffer.
    """

    def __init__(self, transport: Transport, *, max_frame: int) -> None:
        self.transport = transport
        self.max_frame = max_frame
        self._buffer = bytearray()

    async def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        await self.transport.send(_HEADER.pack(len(body)) + body)

    async def receive(self) -> dict[str, Any]:
        """The next frame. Raises anyio.EndOfStream on exit, SandboxError on a corrupt frame."""
        header = await self._read_exact(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > self.max_frame:
            raise SandboxError(f"interpreter sent a frame of {size} bytes (limit {self.max_frame})")
        body = await self._read_exact(size)
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise SandboxError("interpreter sent a frame that is not JSON") from exc
        if not isinstance(message, dict):
            raise SandboxError("interpreter sent a frame that is not a JSON object")
        return message

    async def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = await self.transport.receive()
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


async def kill_quietly(transport: Transport | None) -> None:
    """Kill a transport even while the caller is being cancelled."""
    if transport is None:
        return
    with anyio.CancelScope(shield=True):
        await transport.kill()
