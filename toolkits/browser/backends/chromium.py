"""Headless Chromium (Playwright): pages rendered with JavaScript, one browser for all runs.

One Chromium process (the headless shell when installed) is launched with the toolkit and
shared; every run gets its own light browser context (cookies, storage, cache apart; small
viewport; at most ``max_contexts`` at once). Chromium never touches the network itself: every
request it makes (document, redirect hop, script, fetch) goes through a route handler that
performs it with our policy-checked HTTP client (:mod:`toolkits.browser.net`), redirect hops
included, and fulfils it, or aborts it when the policy refuses; images, media and fonts are not
fetched at all. Chromium's own DNS is switched off as a backstop. Because every request passes
the handler, "the network went quiet" is known exactly (see ``_settle``). Search goes to a
configured SearXNG-style JSON endpoint.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import quote_plus

import anyio
import anyio.to_thread
import httpx
import structlog

from agent.errors import PolicyDenied, ToolError, ToolTimeout, UserError
from policies.config import BrowserPolicy
from policies.network import check_url
from toolkits.browser.backends.base import (
    VIEW_SOURCE_PREFIX,
    Backend,
    BackendError,
    BackendSession,
    results_page,
)
from toolkits.browser.backends.http import THREAD_BYTES, HttpSession, to_page
from toolkits.browser.config import CHROMIUM_CANDIDATES, PlaywrightConfig
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
#: Requests never made: the display is text, so pictures, sound and fonts are wasted work.
_SKIPPED_TYPES = frozenset({"image", "media", "font"})
#: A light context: a small viewport to lay out and paint, no animations, no service workers.
_CONTEXT_OPTIONS: dict[str, Any] = {
    "service_workers": "block", "accept_downloads": False, "reduced_motion": "reduce",
    "viewport": {"width": 1024, "height": 768},
}
_PAGE_JS = "() => [document.documentElement ? document.documentElement.outerHTML : '', document.title]"
_HOP_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


def chromium_path(config: PlaywrightConfig) -> str:
    """The configured Chromium, or the first installed candidate.

    Raises:
        UserError: none is installed.
    """
    if config.executable_path:
        return config.executable_path
    for candidate in CHROMIUM_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    raise UserError(
        "no Chromium found for the playwright browser backend: apt-get install "
        "chromium-headless-shell (or chromium), or set playwright.executable_path"
    )


class PlaywrightBackend(Backend):
    """Owns the shared Chromium; started on first use, stopped with the toolkit."""

    def __init__(self, config: PlaywrightConfig, *, prelaunch: bool = True) -> None:
        self.config = config
        self.prelaunch = prelaunch
        self._pw: Any = None
        self._browser: Any = None
        self._lock = anyio.Lock()
        #: Runs holding a browser context at once; the others wait for one to close.
        self.contexts = anyio.CapacityLimiter(config.max_contexts)

    async def browser(self) -> Any:
        """The shared Chromium, launched now if it is not running (or has crashed)."""
        async with self._lock:
            if self._browser is not None and not self._browser.is_connected():
                log.warning("browser.chromium_lost")  # crashed or killed: start a new one
                await self._stop()
            if self._browser is None:
                from playwright.async_api import async_playwright

                path = chromium_path(self.config)
                self._pw = await async_playwright().start()
                try:
                    self._browser = await self._pw.chromium.launch(
                        executable_path=path, headless=True, args=CHROMIUM_ARGS
                    )
                except BaseException:
                    await self._stop()
                    raise
                log.info("browser.chromium_started", path=path)
            return self._browser

    async def _stop(self) -> None:
        browser, pw, self._browser, self._pw = self._browser, self._pw, None, None
        try:
            if browser is not None:
                await browser.close()
        finally:
            if pw is not None:
                await pw.stop()

    async def start(self) -> None:
        if self.prelaunch:
            await self.browser()  # launched with the toolkit, so no run pays the launch

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop()

    def session(self, policy: BrowserPolicy, run_id: str = "") -> PlaywrightSession:
        return PlaywrightSession(self, policy)


class PlaywrightSession(BackendSession):
    """One run's browser context (cookies, storage and cache of its own) and its one tab."""

    def __init__(self, backend: PlaywrightBackend, policy: BrowserPolicy) -> None:
        self._backend = backend
        self._policy = policy
        self._client: httpx.AsyncClient = policy_client(policy)
        self._source: HttpSession | None = None  # for view-source:, which needs no rendering
        self._context: Any = None
        self._page: Any = None
        self._main: Fetched | None = None  # the last main-frame document response
        self._denied: str | None = None  # why the last main-frame request was refused
        self._inflight = 0  # requests of this run being performed now
        self._last_activity = 0.0  # when a request last started or ended (monotonic)
        self._holds_slot = False  # whether this run holds one of the backend's context slots

    async def _ensure_context(self) -> Any:
        if self._context is None:
            browser = await self._backend.browser()
            await self._backend.contexts.acquire_on_behalf_of(self)
            self._holds_slot = True
            try:
                self._context = await browser.new_context(**_CONTEXT_OPTIONS)
                await self._context.route("**/*", self._handle)
                await self._context.route_web_socket("**/*", _refuse_websocket)
            except BaseException:
                await self._close_context()
                raise
        return self._context

    async def _handle(self, route: Any) -> None:
        """Perform one request Chromium wants, under the policy, and hand it the answer."""
        request = route.request
        if request.resource_type in _SKIPPED_TYPES:
            await route.abort("blockedbyclient")
            return
        self._inflight += 1
        self._last_activity = time.monotonic()
        try:
            await self._perform(route, request)
        finally:
            self._inflight -= 1
            self._last_activity = time.monotonic()

    async def _perform(self, route: Any, request: Any) -> None:
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

    async def _settle(self) -> None:
        """Let scripts that fetch more content finish: wait until no request of this run has
        been in flight for ``quiet_ms``, at most ``settle_ms``. Every request passes our route
        handler, so we know; Playwright's "networkidle" would always wait 500 ms."""
        config = self._backend.config
        quiet = min(config.quiet_ms, config.settle_ms) / 1000
        # quiet counts from the load event at the earliest: what its handlers fetch comes after
        self._last_activity = max(self._last_activity, time.monotonic())
        with anyio.move_on_after(config.settle_ms / 1000):
            while True:
                idle = time.monotonic() - self._last_activity
                if self._inflight == 0 and idle >= quiet:
                    return
                await anyio.sleep(quiet - idle if self._inflight == 0 else 0.02)

    async def fetch(self, url: str) -> PageContents:
        if url.startswith(VIEW_SOURCE_PREFIX):  # the source needs no rendering
            if self._source is None:
                self._source = HttpSession(self._policy)
            return await self._source.fetch(url)
        check_url(url, self._policy)  # refuse file:// and friends before Chromium sees them
        context = await self._ensure_context()
        self._main, self._denied = None, None
        self._last_activity = time.monotonic()
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
                return await to_page(self._main)  # a PDF or file Chromium would download
            if self._denied is not None:
                raise PolicyDenied(self._denied, rule="browser") from exc
            raise ToolError(str(exc).splitlines()[0]) from exc
        if self._main is not None and not self._main.content_type.startswith(_HTML):
            return await to_page(self._main)
        if self._main is not None and self._main.status >= 400:
            raise BackendError(f"HTTP {self._main.status} for {page.url}")
        await self._settle()
        html, title = await page.evaluate(_PAGE_JS)  # one round trip for both
        final_url = self._main.url if self._main is not None else page.url  # after redirects
        if len(html) < THREAD_BYTES:
            return html_to_page(html, final_url, title or None)
        return await anyio.to_thread.run_sync(html_to_page, html, final_url, title or None)

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

    async def _close_context(self) -> None:
        context, self._context, self._page = self._context, None, None
        try:
            if context is not None:
                await context.close()
        except Exception as exc:  # the browser may already be gone at shutdown
            log.debug("browser.context_close_failed", error=repr(exc))
        finally:
            if self._holds_slot:
                self._holds_slot = False
                self._backend.contexts.release_on_behalf_of(self)

    async def aclose(self) -> None:
        await self._close_context()
        if self._source is not None:
            await self._source.aclose()
        await self._client.aclose()


async def _refuse_websocket(ws: Any) -> None:
    await ws.close(code=1008, reason="websockets are not allowed by the browser policy")
