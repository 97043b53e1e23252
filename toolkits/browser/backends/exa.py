"""Exa through the official ``exa-py`` client (sync, on ``requests``): run in worker threads.

Search asks for ``numResults`` results with text and summary, as the reference does; opening a
URL asks ``/contents`` for its text with HTML tags kept, converted like any page.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import anyio
import anyio.to_thread

from policies.config import BrowserPolicy
from policies.network import check_url
from toolkits.browser.backends.base import (
    VIEW_SOURCE_PREFIX,
    Backend,
    BackendError,
    BackendSession,
    results_page,
)
from toolkits.browser.backends.retry import RETRY_STATUSES, RetryableError, with_retries
from toolkits.browser.config import ApiConfig
from toolkits.browser.convert import html_to_page
from toolkits.browser.page import PageContents, maybe_truncate

BASE_URL = "https://api.exa.ai"
_STATUS = re.compile(r"status code (\d{3})")
#: exa-py calls are blocking; at most this many run at once across all runs.
_THREADS = anyio.CapacityLimiter(8)


class ExaBackend(Backend):
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from exa_py import Exa  # imported on use: only Exa users pay for it

            key = self.config.api_key or os.environ.get("EXA_API_KEY")
            if not key:
                raise BackendError("Exa API key not provided (set EXA_API_KEY)")
            self._client = Exa(
                api_key=key, base_url=self.config.base_url or BASE_URL,
                timeout=self.config.timeout_s,
            )
        return self._client

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = functools.partial(getattr(self.client(), method), *args, **kwargs)

        async def attempt() -> Any:
            try:
                return await anyio.to_thread.run_sync(fn, limiter=_THREADS)
            except ValueError as exc:  # exa-py reports HTTP errors as ValueError
                status = _STATUS.search(str(exc))
                message = f"Exa API error: {maybe_truncate(str(exc), 500)}"
                if status and int(status.group(1)) in RETRY_STATUSES:
                    raise RetryableError(message) from exc
                raise BackendError(message) from exc
            except OSError as exc:  # requests' connection errors
                raise RetryableError(f"Exa request failed: {exc!r}") from exc

        return await with_retries(
            attempt, retries=self.config.retries, backoff_s=self.config.backoff_s, what="exa"
        )

    def session(self, policy: BrowserPolicy, run_id: str = "") -> ExaSession:
        return ExaSession(self, policy)


class ExaSession(BackendSession):
    def __init__(self, backend: ExaBackend, policy: BrowserPolicy) -> None:
        self._backend = backend
        self._policy = policy

    async def search(self, query: str, topn: int) -> PageContents:
        response = await self._backend.call(
            "search", query, num_results=topn, contents={"text": True, "summary": True}
        )
        rows = [
            (str(r.title or ""), str(r.url), str(getattr(r, "summary", None) or ""))
            for r in response.results
            if r.url
        ]
        return results_page(query, rows)

    async def fetch(self, url: str) -> PageContents:
        url = url.removeprefix(VIEW_SOURCE_PREFIX)
        check_url(url, self._policy)  # Exa fetches it for us: we check what we can
        response = await self._backend.call(
            "get_contents", [url], text={"include_html_tags": True}
        )
        if not response.results:
            raise BackendError(f"No contents returned for {maybe_truncate(url)}")
        first = response.results[0]
        return html_to_page(getattr(first, "text", None) or "", url, first.title or None)
