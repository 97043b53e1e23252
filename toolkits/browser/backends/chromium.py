"""Headless Chromium (Playwright): pages rendered with JavaScript, one browser for all runs.

One Chromium process is launched on first use and shared; every run gets its own browser
context (cookies, storage, cache apart). Chromium never touches the network itself: every
request it makes (document, redirect hop, script, image, fetch) goes through a route handler
that performs it with our policy-checked HTTP client (:mod:`toolkits.browser.net`), redirect
hops included, and fulfils it, or aborts it when the policy refuses. Chromium's own DNS is switched off as a backstop.
Search goes to a configured SearXNG-style JSON endpoint.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import anyio
import httpx
import structlog

from agent.errors import PolicyDenied, ToolError, ToolTimeout
from policies.config import BrowserPolicy
from policies.network import check_url
from toolkits.browser.backends.base import (
    VIEW_SOURCE_PREFIX,
    Backend,
    BackendError,
    BackendSession,
    results_page,
)
from toolkits.browser.backends.http import HttpSession, fetched_to_page
from toolkits.browser.config import PlaywrightConfig
from toolkits.browser.convert import html_to_page
from toolkits.browser.net import Fetched, fetch, policy_client
from toolkits.browser.page import PageContents

log = structlog.get_logger(__name__)

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND",
]
_HTML = ("text/html", "application/xhtml+xml")
_HOP_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


class PlaywrightBackend(Backend):
    """Owns the shared Chromium; started on first use, stopped with the toolkit."""

    def __init__(self, config: PlaywrightConfig) -> None:
        self.config = config
        self._pw: Any = None
        self._browser: Any = None
        self._lock = anyio.Lock()

    async def browser(self) -> Any:
        async with self._lock:
            if self._browser is None:
                from playwright.async_api import async_playwright

                self._pw = await async_playwright().start()
                self._browser = await self._pw.chromium.launch(
                    executable_path=self.config.executable_path, headless=True, args=CHROMIUM_ARGS
                )
                log.info("browser.chromium_started", path=self.config.executable_path)
            return self._browser

    async def start(self) -> None:
        await self.browser()  # launched with the toolkit, so no run pays the launch

    async def aclose(self) -> None:
        async with self._lock:
            browser, pw, self._browser, self._pw = self._browser, self._pw, None, None
        if browser is not None:
            await browser.close()
        if pw is not None:
            await pw.stop()

    def session(self, policy: BrowserPolicy, run_id: str = "") -> PlaywrightSession:
        return PlaywrightSession(self, policy)


class PlaywrightSession(BackendSession):
    def __init__(self, backend: PlaywrightBackend, policy: BrowserPolicy) -> None:
        self._backend = backend
        self._policy = policy
        self._client: httpx.AsyncClient = policy_client(policy)
        self._context: Any = None
        self._page: Any = None
        self._main: Fetched | None = None  # the last main-frame document response
        self._denied: str | None = None  # why the last main-frame request was refused

    async def _ensure_context(self) -> Any:
        if self._context is None:
            browser = await self._backend.browser()
            self._context = await browser.new_context(service_workers="block", accept_downloads=False)
            await self._context.route("**/*", self._handle)
            await self._context.route_web_socket("**/*", _refuse_websocket)
        return self._context

    async def _handle(self, route: Any) -> None:
        """Perform one request Chromium wants, under the policy, and hand it the answer."""
        request = route.request
        is_main = request.is_navigation_request() and request.frame.parent_frame is None
        try:
            headers = {k: v for k, v in (await request.all_headers()).items() if not k.startswith(":")}
            # Redirects are followed here, every hop checked: Chromium does not route the
            # request a fulfilled redirect leads to, so it must never see one.
            fetched = await fetch(
                self._client, request.url, self._policy,
                method=request.method, headers=headers, content=request.post_data_buffer,
            )
        except ToolError as exc:
            if is_main:
                self._denied = exc.message
            log.info("browser.request_refused", url=request.url, error=exc.message)
            await route.abort("blockedbyclient" if isinstance(exc, PolicyDenied) else "failed")
            return
        if is_main:
            self._main = fetched
        out_headers = {k: v for k, v in fetched.headers.items() if k.lower() not in _HOP_HEADERS}
        await route.fulfill(status=fetched.status, headers=out_headers, body=fetched.body)

    async def fetch(self, url: str) -> PageContents:
        if url.startswith(VIEW_SOURCE_PREFIX):  # the source needs no rendering
            return await HttpSession(self._policy).fetch(url)
        check_url(url, self._policy)  # refuse file:// and friends before Chromium sees them
        context = await self._ensure_context()
        self._main, self._denied = None, None
        if self._page is None or self._page.is_closed():
            self._page = await context.new_page()  # one tab per run: a new tab costs ~0.4 s
        try:
            with anyio.fail_after(self._policy.page_timeout_s + 5):
                return await self._render(self._page, url)
        except TimeoutError as exc:
            await self._page.close()  # a hung tab is dropped; the next fetch opens a fresh one
            raise ToolTimeout(f"the page did not load within {self._policy.page_timeout_s:g} s") from exc

    async def _render(self, page: Any, url: str) -> PageContents:
        from playwright.async_api import Error as PlaywrightError

        timeout_ms = self._policy.page_timeout_s * 1000
        try:
            await page.goto(url, wait_until="load", timeout=timeout_ms)
        except PlaywrightError as exc:
            if self._main is not None and not self._main.content_type.startswith(_HTML):
                return fetched_to_page(self._main)  # a PDF or file Chromium would download
            if self._denied is not None:
                raise PolicyDenied(self._denied, rule="browser") from exc
            raise ToolError(str(exc).splitlines()[0]) from exc
        if self._main is not None and not self._main.content_type.startswith(_HTML):
            return fetched_to_page(self._main)
        if self._main is not None and self._main.status >= 400:
            raise BackendError(f"HTTP {self._main.status} for {page.url}")
        try:  # let scripts that fetch more content finish, briefly
            await page.wait_for_load_state("networkidle", timeout=self._backend.config.settle_ms)
        except PlaywrightError:
            pass
        html, title = await page.content(), await page.title()
        final_url = self._main.url if self._main is not None else page.url  # after redirects
        return html_to_page(html, final_url, title or None)

    async def search(self, query: str, topn: int) -> PageContents:
        template = self._backend.config.search_url
        if not template:
            raise BackendError("no search_url configured for the playwright backend")
        search_url = template.replace("{query}", quote_plus(query))
        # the operator's search endpoint, not a page the model chose: no browser policy here
        async with httpx.AsyncClient(trust_env=False, timeout=self._policy.page_timeout_s) as c:
            try:
                resp = await c.get(search_url)
                data = resp.json()
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                raise BackendError(f"search endpoint failed: {exc!r}") from exc
        rows = [
            (str(r.get("title", "")), str(r["url"]), str(r.get("content", "")))
            for r in data.get("results", [])[:topn]
            if r.get("url")
        ]
        return results_page(query, rows)

    async def aclose(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            try:
                await context.close()
            except Exception as exc:  # the browser may already be gone at shutdown
                log.debug("browser.context_close_failed", error=repr(exc))
        await self._client.aclose()


async def _refuse_websocket(ws: Any) -> None:
    await ws.close(code=1008, reason="websockets are not allowed by the browser policy")
