"""The backend interface: search and open pages for one run, behind one async API.

A :class:`Backend` is shared by every run (an API client, a Chromium process); it opens one
:class:`BackendSession` per run, which holds that run's connections (an httpx client, a browser
context) and the run's :class:`~policies.config.BrowserPolicy`.

Example::

    async with HttpBackend() as backend:
        async with backend.session(policy) as s:
            page = await s.fetch("https://example.com/")

Sessions raise :class:`agent.errors.ToolError` subclasses (``PolicyDenied``, ``ToolTimeout``)
for anything the model can act on; the browser session words them as the reference does.
"""

from __future__ import annotations

import abc
import html
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from agent.errors import ToolError
from policies.config import BrowserPolicy
from toolkits.browser.convert import html_to_page
from toolkits.browser.page import PageContents

VIEW_SOURCE_PREFIX = "view-source:"


class BackendError(ToolError):
    """A backend could not answer (API error, unsupported content, no result)."""


class BackendSession:
    """One run's access to a backend; a backend overrides what it supports (search, fetch)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def search(self, query: str, topn: int) -> PageContents:
        raise BackendError("this browser backend cannot search; open a URL instead")

    async def fetch(self, url: str) -> PageContents:
        raise BackendError("this browser backend cannot open pages")

    async def aclose(self) -> None:
        """Release the run's resources; safe to call twice."""


class Backend(abc.ABC):
    """Shared resources of one backend kind; ``session`` gives a run its own view."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start shared resources (default: nothing)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Stop shared resources; safe to call twice."""

    @abc.abstractmethod
    def session(self, policy: BrowserPolicy, run_id: str = "") -> BackendSession:
        """A fresh session for one run."""


def results_page(query: str, results: Sequence[tuple[str, str, str]]) -> PageContents:
    """The trained search display: an ``# Search Results`` list of ``(title, url, summary)``.

    Built as the reference builds it (a small HTML page converted like any other), so result
    links become ``【id†title†domain】`` markers the model opens by id.
    """
    items = "".join(
        f"<li><a href='{html.escape(url, quote=True)}'>{html.escape(title)}</a> "
        f"{html.escape(summary)}</li>"
        for title, url, summary in results
    )
    doc = f"<html><body><h1>Search Results</h1><ul>{items}</ul></body></html>"
    return html_to_page(doc, url="", title=query)
