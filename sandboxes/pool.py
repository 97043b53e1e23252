"""A warm pool: sandboxes started ahead, so a run's first call does not wait for a container.

The pool is an async context manager that owns a task group; refills run inside it (structured
concurrency, no stray tasks). :meth:`SandboxPool.acquire` hands out a started sandbox, or starts
one on the spot when the pool is empty, and asks for a replacement. A handed-out sandbox belongs
to the caller, who closes it; the pool closes the ones it still holds when it exits.

Example::

    async with SandboxPool(lambda: BubblewrapSandbox(limits), size=2) as pool:
        box = await pool.acquire()
        try:
            await box.exec_code("1 + 1", timeout=5)
        finally:
            await box.aclose()
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
import structlog

from agent.errors import SandboxError
from sandboxes.base import Sandbox

log = structlog.get_logger(__name__)

SandboxFactory = Callable[[], Sandbox]


class SandboxPool:
    def __init__(self, factory: SandboxFactory, *, size: int = 1) -> None:
        self.factory = factory
        self.size = size
        self._ready: deque[Sandbox] = deque()
        self._starting = 0
        self.hits = 0  # acquisitions served by an already started sandbox
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._changed = anyio.Event()
        self._last_error = ""

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._fill()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tg is not None:
            # Exiting the group must happen in its own scope (not under a shield of ours).
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
        while self._ready:
            await self._ready.popleft().aclose()

    @property
    def warm(self) -> int:
        return len(self._ready)

    async def wait_warm(self, count: int | None = None) -> None:
        """Wait until ``count`` (default: ``size``) sandboxes are ready (for tests, benchmarks)."""
        target = self.size if count is None else count
        while len(self._ready) < target:
            if self._starting == 0:
                raise SandboxError(f"the pool could not start a sandbox: {self._last_error}")
            event = self._changed
            await event.wait()

    async def acquire(self) -> Sandbox:
        """A started sandbox for the caller to own. Raises SandboxError when none can start."""
        if self._closed:
            raise SandboxError("the sandbox pool is closed")
        box = self._ready.popleft() if self._ready else None
        self._fill()
        if box is not None:
            self.hits += 1
            return box
        box = self.factory()
        try:
            await box.start()
        except BaseException:
            await box.aclose()
            raise
        return box

    def _fill(self) -> None:
        if self._tg is None or self._closed:
            return
        while len(self._ready) + self._starting < self.size:
            self._starting += 1
            self._tg.start_soon(self._start_one)

    async def _start_one(self) -> None:
        box = self.factory()
        try:
            await box.start()
        except BaseException as exc:
            self._starting -= 1
            await box.aclose()
            if not isinstance(exc, SandboxError):
                raise
            # Not fatal: acquire() starts one itself and reports the error to its caller.
            self._last_error = str(exc)
            log.warning("sandbox.pool_start_failed", error=self._last_error)
            self._notify()
            return
        self._starting -= 1
        if self._closed:
            await box.aclose()
            return
        self._ready.append(box)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
