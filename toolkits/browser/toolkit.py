"""The ``browser`` toolkit: backends chosen by config, one page stack per run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import openai_harmony as oh

from agent.errors import UserError
from toolkits.base import RunContext, Toolkit, ToolNamespace, ToolSpec
from toolkits.browser.backends.base import Backend
from toolkits.browser.backends.http import HttpBackend
from toolkits.browser.backends.recorded import RecordingBackend, ReplayBackend
from toolkits.browser.config import BrowserConfig
from toolkits.browser.session import BrowserSession
from toolkits.browser.viewport import warm as warm_viewport

if TYPE_CHECKING:
    from policies.run import RunPolicy


def browser_namespace(source: str = "web") -> ToolNamespace:
    """The namespace exactly as gpt-oss was trained on it (taken from openai-harmony)."""
    trained = oh.ToolNamespaceConfig.browser()
    description = trained.description or ""
    if source != "web":
        description = description.replace(
            "sources=web (default: web)", f"sources={source} (default: {source})"
        )
    tools = tuple(ToolSpec(t.name, t.description, t.parameters) for t in trained.tools)
    return ToolNamespace(name="browser", description=description, tools=tools, placement="system")


class BrowserToolkit(Toolkit):
    """Search, open and find, as gpt-oss was trained to browse.

    Example::

        async with BrowserToolkit(BrowserConfig(search="exa", open="http")) as browser:
            async with browser.session(ctx) as s:
                reply = await s.call(call)
    """

    name = "browser"

    def __init__(self, config: BrowserConfig | None = None) -> None:
        self.config = config or BrowserConfig()
        self._backends: dict[str, Backend] = {}
        self._open = self._backend(self.config.open, opens=True)
        self._search = self._backend(self.config.search, opens=False)

    def _backend(self, kind: str, *, opens: bool) -> Backend:
        if kind in self._backends:
            return self._backends[kind]
        backend: Backend
        if kind == "http":
            backend = HttpBackend()
        elif kind == "youcom":
            from toolkits.browser.backends.youcom import YouComBackend

            backend = YouComBackend(self.config.youcom)
        elif kind == "exa":
            from toolkits.browser.backends.exa import ExaBackend

            backend = ExaBackend(self.config.exa)
        elif kind == "playwright":
            from toolkits.browser.backends.chromium import PlaywrightBackend

            # Chromium is launched with the toolkit only when it renders pages: searching
            # through the configured search URL needs no browser.
            backend = PlaywrightBackend(self.config.playwright, prelaunch=opens)
        elif kind == "recorded":
            if self.config.replay_from is None:
                raise UserError("browser backend 'recorded' needs replay_from (a recording file)")
            backend = ReplayBackend(self.config.replay_from)
        else:
            raise UserError(f"unknown browser backend {kind!r}")
        if self.config.record_to is not None and kind != "recorded":
            backend = RecordingBackend(backend, self.config.record_to, kind)
        self._backends[kind] = backend
        return backend

    async def start(self) -> None:
        await anyio.to_thread.run_sync(warm_viewport)  # the first page view would pay it
        for backend in self._backends.values():
            await backend.start()

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()

    def namespace(self, policy: RunPolicy | None = None) -> ToolNamespace:
        return browser_namespace(self.config.source)

    def session(self, ctx: RunContext) -> BrowserSession:
        policy = ctx.policy.config.browser
        search = self._search.session(policy, run_id=ctx.run_id)
        opener = search if self._open is self._search else self._open.session(policy, run_id=ctx.run_id)
        return BrowserSession(
            ctx, search, opener,
            view_tokens=self.config.view_tokens,
            max_search_results=self.config.max_search_results,
        )
