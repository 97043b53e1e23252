"""You.com: search (``GET /v1/search``) and page contents (``POST /v1/contents``) over httpx.

Wire format as the reference uses it: the key goes in ``X-API-Key``; search takes ``query`` and
``count`` and answers ``{"results": {"web": [{url, title, description, snippets}], "news":
[{url, title, description}]}}``; contents takes ``{"urls": [...], "livecrawl_formats": "html"}``
and answers a list of ``{url, title, html}``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from policies.config import BrowserPolicy
from policies.network import check_url
from toolkits.browser.backends.base import (
    VIEW_SOURCE_PREFIX,
    Backend,
    BackendError,
    BackendSession,
    results_page,
)
from toolkits.browser.backends.retry import (
    RETRY_STATUSES,
    RetryableError,
    retry_after,
    with_retries,
)
from toolkits.browser.config import ApiConfig
from toolkits.browser.convert import html_to_page
from toolkits.browser.page import PageContents, maybe_truncate

BASE_URL = "https://api.ydc-index.io"


class YouComBackend(Backend):
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None

    def _api_key(self) -> str:
        key = self.config.api_key or os.environ.get("YDC_API_KEY")
        if not key:
            raise BackendError("You.com API key not provided (set YDC_API_KEY)")
        return key

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.config.base_url or BASE_URL, trust_env=False,
                timeout=httpx.Timeout(self.config.timeout_s),
            )
        return self._client

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-API-Key": self._api_key()}

        async def attempt() -> Any:
            try:
                resp = await self.client().request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                raise RetryableError(f"You.com request failed: {exc!r}") from exc
            if resp.status_code in RETRY_STATUSES:
                raise RetryableError(
                    f"YouComBackend error {resp.status_code}: {resp.text[:500]}",
                    retry_after=retry_after(resp.headers),
                )
            if resp.status_code != 200:
                raise BackendError(f"YouComBackend error {resp.status_code}: {resp.text[:500]}")
            return resp.json()

        return await with_retries(
            attempt, retries=self.config.retries, backoff_s=self.config.backoff_s, what="youcom"
        )

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def session(self, policy: BrowserPolicy, run_id: str = "") -> YouComSession:
        return YouComSession(self, policy)


def _summary(result: dict[str, Any]) -> str:
    snippets = result.get("snippets")
    if isinstance(snippets, list) and snippets:
        return " ".join(str(s) for s in snippets)
    return str(result.get("description") or "")


class YouComSession(BackendSession):
    def __init__(self, backend: YouComBackend, policy: BrowserPolicy) -> None:
        self._backend = backend
        self._policy = policy

    async def search(self, query: str, topn: int) -> PageContents:
        data = await self._backend.request("GET", "/v1/search", params={"query": query, "count": topn})
        results = data.get("results") or {}
        rows = [
            (str(r.get("title", "")), str(r.get("url", "")), _summary(r))
            for r in [*results.get("web", []), *results.get("news", [])]
            if r.get("url")
        ]
        return results_page(query, rows)

    async def fetch(self, url: str) -> PageContents:
        url = url.removeprefix(VIEW_SOURCE_PREFIX)
        check_url(url, self._policy)  # the API fetches it for us: we check what we can
        data = await self._backend.request(
            "POST", "/v1/contents", json={"urls": [url], "livecrawl_formats": "html"}
        )
        if not data:
            raise BackendError(f"No contents returned for {maybe_truncate(url)}")
        if "html" not in data[0]:
            raise BackendError(f"No HTML returned for {maybe_truncate(url)}")
        return html_to_page(data[0].get("html") or "", url, data[0].get("title") or None)
