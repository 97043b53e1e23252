"""Browser toolkit configuration: which backend searches, which opens, and their settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiConfig(_Strict):
    """A search API: key (or the env variable holding it), base URL, timeout and retries."""

    api_key: str | None = None
    base_url: str | None = None  # None: the service's public endpoint
    timeout_s: float = 30.0
    retries: int = 3  # extra attempts on 429/5xx, with exponential backoff
    backoff_s: float = 0.5


#: Chromium builds tried in order when ``executable_path`` is not set. The headless shell (Debian
#: ``chromium-headless-shell``) is built for automation: a new browser context costs it about a
#: quarter of the CPU full Chromium spends setting up a profile, and a launch about half.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium")


class PlaywrightConfig(_Strict):
    executable_path: str | None = None  # None: the first of CHROMIUM_CANDIDATES installed
    #: Search URL with ``{query}``; a SearXNG JSON endpoint, e.g.
    #: ``http://127.0.0.1:8888/search?q={query}&format=json``.
    search_url: str | None = None
    #: After load, wait for the page's requests to settle: until none has been in flight for
    #: ``quiet_ms``, at most ``settle_ms`` (a static page costs only ``quiet_ms``).
    settle_ms: int = 2000
    quiet_ms: int = 100
    max_contexts: int = 32  # runs browsing at once on the shared Chromium


class BrowserConfig(_Strict):
    """Where ``browser.search`` and ``browser.open`` go.

    ``search``: youcom | exa | playwright (a SearXNG-style search URL) | recorded.
    ``open``: http (httpx, no JavaScript) | playwright (headless Chromium) | youcom | exa (the
    API's contents endpoint) | recorded. ``record_to`` writes every backend answer of a run to
    a JSONL file (``{run_id}`` is replaced); ``replay_from`` serves such a file offline.
    """

    search: Literal["youcom", "exa", "playwright", "recorded"] = "youcom"
    open: Literal["http", "playwright", "youcom", "exa", "recorded"] = "http"
    source: str = "web"
    youcom: ApiConfig = Field(default_factory=ApiConfig)
    exa: ApiConfig = Field(default_factory=ApiConfig)
    playwright: PlaywrightConfig = Field(default_factory=PlaywrightConfig)
    record_to: Path | None = None
    replay_from: Path | None = None
    view_tokens: int = 1024
    max_search_results: int = 20
