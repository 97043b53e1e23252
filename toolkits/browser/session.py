"""One run's browser: the page stack, cursors, and the search/open/find methods the model calls.

Behaviour and wording follow the trained reference (openai/gpt-oss ``SimpleBrowserTool``):
``open`` with a number follows a link of the page at ``cursor``, with a string opens a URL,
without ``id`` scrolls; every display pushes a new cursor. Unlike the reference, pages are kept
per cursor (two searches never overwrite each other) and every page fetched in the run is cached
by URL, so re-opening it costs neither time nor budget.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import structlog
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from agent.errors import InvalidArguments, PolicyDenied, ToolError
from toolkits.base import RunContext, ToolCall, ToolReply, ToolSession
from toolkits.browser.backends.base import VIEW_SOURCE_PREFIX, BackendSession
from toolkits.browser.citations import CitedText, cite_url, resolve_citations
from toolkits.browser.display import find_page, render_view
from toolkits.browser.page import PageContents, maybe_truncate

log = structlog.get_logger(__name__)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchArgs(_Args):
    query: str
    topn: int = 10
    top_n: int = 10  # the reference accepts both spellings
    source: str | None = None


class OpenArgs(_Args):
    id: int | str = -1
    cursor: int = -1
    loc: int = -1
    num_lines: int = -1
    view_source: StrictBool = False
    source: str | None = None


class FindArgs(_Args):
    pattern: str
    cursor: int = -1


_ARGS: dict[str, type[_Args]] = {"search": SearchArgs, "open": OpenArgs, "find": FindArgs}


def parse_args(method: str | None, raw: str) -> _Args:
    """Validate a call's JSON arguments. Raises InvalidArguments with what to change."""
    model = _ARGS.get(method or "")
    if model is None:
        raise InvalidArguments(
            f"Unknown function: {method}. The browser has search, open and find."
        )
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"browser.{method} arguments are not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArguments(f"browser.{method} arguments must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in e['loc']) or 'arguments'}`: {e['msg']}"
            for e in exc.errors()
        )
        raise InvalidArguments(f"invalid arguments for browser.{method}: {problems}") from exc


class BrowserSession(ToolSession):
    """The page stack of one run. Calls are serialised: one run sees one consistent stack."""

    def __init__(
        self,
        ctx: RunContext,
        search: BackendSession,
        opener: BackendSession,
        *,
        view_tokens: int,
        max_search_results: int,
    ) -> None:
        self.ctx = ctx
        self._search = search
        self._opener = opener
        self._view_tokens = view_tokens
        self._max_results = max_search_results
        self.pages: list[PageContents] = []
        self._cache: dict[str, PageContents] = {}
        self._lock = anyio.Lock()

    async def aclose(self) -> None:
        await self._search.aclose()
        if self._opener is not self._search:
            await self._opener.aclose()

    async def call(self, call: ToolCall) -> ToolReply:
        args = parse_args(call.method, call.arguments)
        async with self._lock:
            if isinstance(args, SearchArgs):
                text = await self.search(args)
            elif isinstance(args, OpenArgs):
                text = await self.open(args)
            else:
                assert isinstance(args, FindArgs)
                text = await self.find(args)
        page = self.pages[-1]
        return ToolReply(
            text=text,
            metadata={
                "url": page.url, "title": page.title, "cursor": len(self.pages) - 1,
                "cite_url": cite_url(page),
            },
        )

    # --- the three methods ------------------------------------------------------------------

    async def search(self, args: SearchArgs) -> str:
        self.ctx.policy.charge("browser_pages", 1)
        try:
            page = await self._search.search(args.query, self._max_results)
        except PolicyDenied:
            raise
        except ToolError as exc:
            raise ToolError(
                f"Error during search for `{args.query}`: {maybe_truncate(exc.message)}"
            ) from exc
        self.pages.append(page)
        return self._show(loc=0, num_lines=-1)

    async def open(self, args: OpenArgs) -> str:
        snippet_line: int | None = None
        current: PageContents | None = None
        if isinstance(args.id, str):
            url = args.id
        else:
            current = self._page(args.cursor)
            if args.id >= 0:
                url = current.urls.get(str(args.id), "")
                if not url:
                    raise ToolError(f"Invalid link id `{args.id}`.")
                snippet = (current.snippets or {}).get(str(args.id))
                snippet_line = snippet.line_idx if snippet else None
            else:
                url = current.url
        stay = current is not None and args.id == -1 and not args.view_source
        if args.view_source:
            url, snippet_line = VIEW_SOURCE_PREFIX + url, None
        page = current if stay and current is not None else await self._open_url(url)
        self.pages.append(page)
        loc = args.loc
        if loc < 0:
            loc = snippet_line if snippet_line is not None else 0
            loc = loc - 4 if loc > 4 else loc
        return self._show(loc=loc, num_lines=args.num_lines)

    async def find(self, args: FindArgs) -> str:
        page = self._page(args.cursor)
        if page.snippets is not None:
            raise ToolError("Cannot run `find` on search results page or find results page")
        self.pages.append(find_page(str(args.pattern).lower(), page))
        return self._show(loc=0, num_lines=-1)

    # --- helpers ----------------------------------------------------------------------------

    def _page(self, cursor: int) -> PageContents:
        current = len(self.pages) - 1
        if current < 0:
            raise ToolError("No pages to access!")
        if cursor in (-1, current):
            return self.pages[-1]
        try:
            return self.pages[cursor]
        except IndexError as exc:
            raise ToolError(
                f"Cursor `{cursor}` is out of range. Available cursor indices: [0 - {current}]."
            ) from exc

    async def _open_url(self, url: str) -> PageContents:
        cached = self._cache.get(url)
        if cached is not None:
            return cached
        self.ctx.policy.charge("browser_pages", 1)
        try:
            page = await self._opener.fetch(url)
        except ToolError as exc:
            message = f"Error fetching URL `{maybe_truncate(url)}`: {maybe_truncate(exc.message)}"
            log.info("browser.fetch_failed", url=url, error=exc.message, run_id=self.ctx.run_id)
            if isinstance(exc, PolicyDenied):
                raise PolicyDenied(message, rule=exc.rule) from exc
            raise type(exc)(message) from exc
        self._cache[url] = self._cache[page.url] = page
        return page

    def _show(self, loc: int, num_lines: int) -> str:
        """Render the newest page; a failed render takes it off the stack again."""
        try:
            text = render_view(self.pages[-1], len(self.pages) - 1, loc, num_lines, self._view_tokens)
        except ToolError:
            self.pages.pop()
            raise
        return self.ctx.policy.redact(text)

    # --- citations --------------------------------------------------------------------------

    def cite(self, text: str) -> CitedText:
        """Resolve ``【cursor†Lx-Ly】`` markers of a final answer against this run's pages."""
        return resolve_citations(text, self.pages)

    def snapshot(self) -> Sequence[dict[str, Any]]:
        """The page stack as plain data (for run results and debugging)."""
        return [{"cursor": i, "url": p.url, "title": p.title} for i, p in enumerate(self.pages)]
