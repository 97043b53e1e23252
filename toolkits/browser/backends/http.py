"""Open pages with plain HTTP (httpx), no browser: the cheap default for ``open``."""

from __future__ import annotations

import functools
import html as html_lib
import re

import anyio
import anyio.to_thread
import httpx

from policies.config import BrowserPolicy
from toolkits.browser.backends.base import (
    VIEW_SOURCE_PREFIX,
    Backend,
    BackendError,
    BackendSession,
)
from toolkits.browser.backends.retry import (
    RETRY_STATUSES,
    RetryableError,
    retry_after,
    with_retries,
)
from toolkits.browser.convert import html_to_page, pdf_to_page, text_to_page
from toolkits.browser.net import Fetched, fetch, policy_client
from toolkits.browser.page import PageContents

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.I)
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "text/")
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def decode_text(fetched: Fetched) -> str:
    charset = fetched.charset
    if charset is None:
        sniff = _META_CHARSET.search(fetched.body[:4096])
        charset = sniff.group(1).decode("ascii") if sniff else "utf-8"
    try:
        return fetched.body.decode(charset, errors="replace")
    except LookupError:
        return fetched.body.decode("utf-8", errors="replace")


def _looks_binary(body: bytes) -> bool:
    return b"\x00" in body[:1024]


def fetched_to_page(fetched: Fetched, *, view_source: bool = False) -> PageContents:
    """Turn a response into a page: HTML, PDF and text kinds; anything else is refused.

    Raises:
        BackendError: an HTTP error status or content that is not text, HTML or PDF.
    """
    if fetched.status >= 400:
        raise BackendError(f"HTTP {fetched.status} for {fetched.url}")
    ctype = fetched.content_type
    if ctype == "application/pdf" or fetched.body.startswith(b"%PDF-"):
        try:
            return pdf_to_page(fetched.body, fetched.url)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
    sniff_html = not ctype and fetched.body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))
    if ctype.startswith(_HTML_TYPES) or sniff_html:
        text = decode_text(fetched)
        if view_source:
            # the source shown as text, so markup is visible and nothing becomes a link
            return html_to_page(f"<pre>{html_lib.escape(text)}</pre>", fetched.url)
        return html_to_page(text, fetched.url)
    if ctype.startswith(_TEXT_TYPES) or (not ctype and not _looks_binary(fetched.body)):
        return text_to_page(decode_text(fetched), fetched.url)
    raise BackendError(
        f"cannot display content of type {ctype or 'unknown'} ({len(fetched.body)} bytes); "
        "only HTML, text and PDF pages can be opened"
    )


#: Documents larger than this are converted in a worker thread, so one big page does not hold
#: up every other run's event loop work (a 5 MB page takes about a second).
THREAD_BYTES = 256_000
_CONVERTERS = anyio.CapacityLimiter(4)


def _convert_whole(fetched: Fetched, view_source: bool) -> PageContents:
    page = fetched_to_page(fetched, view_source=view_source)
    _ = page.lines  # wrapped here too: it is the other per-page cost
    return page


async def to_page(fetched: Fetched, *, view_source: bool = False) -> PageContents:
    """:func:`fetched_to_page`, in a worker thread for a large body."""
    if len(fetched.body) < THREAD_BYTES:
        return fetched_to_page(fetched, view_source=view_source)
    return await anyio.to_thread.run_sync(
        functools.partial(_convert_whole, fetched, view_source), limiter=_CONVERTERS
    )


#: A page answering 429/5xx is asked again this many times (a GET is safe to repeat), after
#: 0.25 s, then 0.5 s; a server asking to wait longer than 5 s is reported to the model instead.
PAGE_RETRIES, PAGE_BACKOFF_S, PAGE_MAX_WAIT_S = 2, 0.25, 5.0


class HttpSession(BackendSession):
    def __init__(self, policy: BrowserPolicy, *, retries: int = PAGE_RETRIES,
                 backoff_s: float = PAGE_BACKOFF_S) -> None:
        self._policy = policy
        self._client: httpx.AsyncClient | None = None
        self._retries, self._backoff_s = retries, backoff_s

    async def fetch(self, url: str) -> PageContents:
        view_source = url.startswith(VIEW_SOURCE_PREFIX)
        if view_source:
            url = url[len(VIEW_SOURCE_PREFIX):]
        if self._client is None:
            self._client = policy_client(self._policy)
        fetched = await with_retries(functools.partial(self._attempt, self._client, url),
                                     retries=self._retries, backoff_s=self._backoff_s,
                                     what="page", max_wait_s=PAGE_MAX_WAIT_S)
        page = await to_page(fetched, view_source=view_source)
        if view_source:
            return PageContents(VIEW_SOURCE_PREFIX + url, page.title, page.text, page.urls)
        return page

    async def _attempt(self, client: httpx.AsyncClient, url: str) -> Fetched:
        fetched = await fetch(client, url, self._policy)
        if fetched.status in RETRY_STATUSES:
            raise RetryableError(f"HTTP {fetched.status} for {fetched.url}",
                                 retry_after=retry_after(fetched.headers))
        return fetched

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class HttpBackend(Backend):
    """Fetches with httpx under the run's policy; one client (connection pool) per run."""

    def session(self, policy: BrowserPolicy, run_id: str = "") -> HttpSession:
        return HttpSession(policy)
