"""The toolkit interface: a namespace the model can address, with per-run sessions.

A :class:`Toolkit` is configuration plus resources shared by every run (a Chromium process, a
warm pool of sandboxes). It declares a namespace (how it is rendered to the model) and opens one
:class:`ToolSession` per run, which holds that run's state (browser pages, a python interpreter).
Two concurrent runs never share a session.

Example::

    async with MyToolkit() as toolkit:                 # shared resources up
        async with toolkit.session(ctx) as session:    # one run's state
            reply = await session.call(call)

A session raises :class:`agent.errors.ToolError` (or a subclass) for anything the model can fix;
the loop turns it into a tool message. Other exceptions are bugs or infrastructure failures.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:
    from policies.run import RunPolicy


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One method of a namespace. ``parameters`` is a JSON schema; None means free-form text."""

    name: str
    description: str
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolNamespace:
    """How a toolkit is declared to the model.

    ``placement`` "system" renders it in the system message as a built-in tool (browser, python);
    "developer" renders its tools in the developer message (function tools, ``functions.*``).
    """

    name: str
    description: str | None
    tools: tuple[ToolSpec, ...] = ()
    placement: Literal["system", "developer"] = "developer"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A message from the model addressed to a tool.

    ``recipient`` is the full address (``browser.search``, ``python``, ``functions.get_weather``);
    ``method`` is the part after the namespace, or None for a namespace called directly.
    ``arguments`` is the raw text the model sent (JSON for most tools, code for python).
    """

    recipient: str
    namespace: str
    method: str | None
    arguments: str
    channel: str | None = None
    content_type: str | None = None
    call_id: str = ""


@dataclass(frozen=True, slots=True)
class ToolReply:
    """What a tool answers. ``text`` is what the model sees; ``metadata`` goes to the run result."""

    text: str
    is_error: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RunContext:
    """What a session knows about the run it serves.

    ``files_dir`` is the run's folder on the host for files the tools write (mapped to
    ``/mnt/data`` in the python sandbox); ``policy`` is the run's policy state, from which
    toolkits take the limits only they can enforce.
    """

    run_id: str
    files_dir: Path
    policy: RunPolicy
    extras: dict[str, Any] = field(default_factory=dict)


class _Lifecycle:
    """``async with`` around optional ``start``/``aclose`` hooks."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Acquire resources (default: nothing)."""

    async def aclose(self) -> None:
        """Release resources; must not raise and must be safe to call twice."""


class ToolSession(_Lifecycle, abc.ABC):
    """One run's state for one toolkit."""

    @abc.abstractmethod
    async def call(self, call: ToolCall) -> ToolReply:
        """Handle one call. Raises ToolError for anything the model should fix."""


class Toolkit(_Lifecycle, abc.ABC):
    """A namespace of tools with shared resources (started once) and per-run sessions."""

    #: The namespace the model addresses (``browser``, ``python``, ``functions``, ...).
    name: str

    @abc.abstractmethod
    def namespace(self, policy: RunPolicy | None = None) -> ToolNamespace:
        """The declaration rendered to the model; ``policy`` lets text follow the policy's limits."""

    @abc.abstractmethod
    def session(self, ctx: RunContext) -> ToolSession:
        """A fresh session for one run (entered by the caller with ``async with``)."""
