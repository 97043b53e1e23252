"""Headless Chromium through Playwright: JavaScript pages, and the policy on every request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from browser_helpers import call, make_ctx

from agent.errors import PolicyDenied, ToolError
from toolkits.browser import BrowserConfig, BrowserToolkit, PlaywrightConfig
from toolkits.browser.backends.chromium import PlaywrightBackend

pytestmark = [pytest.mark.anyio, pytest.mark.chromium]


def _config(site: str, open_with: str = "playwright") -> BrowserConfig:
    return BrowserConfig(
        search="playwright", open=open_with,  # type: ignore[arg-type]
        playwright={"search_url": site + "/search?q={query}&format=json"},  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def probe_server() -> Iterator[tuple[int, list[str]]]:
    """A server on 127.0.0.2 that records any request: it must never get one."""
    hits: list[str] = []

    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


async def test_javascript_page_needs_the_browser(needs_chromium: None, site: str, tmp_path: Path) -> None:
    async with BrowserToolkit(_config(site, "http")) as plain, plain.session(make_ctx(tmp_path)) as s:
        text = (await s.call(call("open", id=site + "/js"))).text
    assert "marmalade" not in text and "Loading..." in text
    async with BrowserToolkit(_config(site)) as browser, browser.session(make_ctx(tmp_path)) as s:
        await s.call(call("search", query="apples"))
        page = await s.call(call("open", id=site + "/js"))
        assert "L2: Built by JavaScript: the secret word is marmalade." in page.text
        linked = await s.call(call("open", cursor=0, id=0))  # search result via Chromium
        assert "Page A talks about apples" in linked.text
        redirected = await s.call(call("open", id=site + "/redirect"))
        assert redirected.text.startswith(f"[3] Page A ({site}/a)")
        pdf = await s.call(call("open", id=site + "/doc.pdf"))
        assert "Hello from a PDF document" in pdf.text
        # a request still in flight after load is waited for (up to settle_ms)
        late = await s.call(call("open", id=site + "/late"))
        assert "fetched after load: <html><body><p>finally</p></body></html>" in late.text


async def test_every_request_passes_the_policy(needs_chromium: None, site: str, tmp_path: Path) -> None:
    with probe_server() as (port, hits):
        async with BrowserToolkit(_config(site)) as browser, browser.session(make_ctx(tmp_path)) as s:
            page = await s.call(call("open", id=f"{site}/leaky?probe={port}"))
            assert "static text plus script text" in page.text  # same-origin script ran
            with pytest.raises(PolicyDenied, match="127.0.0.2"):
                await s.call(call("open", id=site + "/to-private"))
            with pytest.raises(PolicyDenied, match="file: scheme"):
                await s.call(call("open", id="file:///etc/passwd"))
            with pytest.raises(ToolError, match="too many redirects"):
                await s.call(call("open", id=site + "/loop"))
            with pytest.raises(ToolError):
                await s.call(call("open", id=site + "/slowloris"))
        await anyio.sleep(0.2)
    assert hits == []  # neither the image, the fetch, nor the redirect reached 127.0.0.2


async def test_runs_share_one_chromium_with_separate_contexts(
    needs_chromium: None, site: str, tmp_path: Path
) -> None:
    config = _config(site).model_copy(
        update={"playwright": PlaywrightConfig(search_url=site + "/search?q={query}", max_contexts=2)}
    )
    async with BrowserToolkit(config) as browser:  # 4 runs, 2 contexts at a time
        seen: dict[str, str] = {}

        async def run(i: int) -> None:
            path = "/a" if i % 2 else "/table"
            async with browser.session(make_ctx(tmp_path, run_id=f"r{i}")) as s:
                await s.call(call("open", id=site + path))
                seen[f"r{i}"] = (await s.call(call("open", loc=0))).text

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(run, i)
    assert len(seen) == 4
    assert all(("Page A" in t) == (int(k[1:]) % 2 == 1) for k, t in seen.items())


async def test_a_lost_chromium_is_relaunched(needs_chromium: None, site: str, tmp_path: Path) -> None:
    async with BrowserToolkit(_config(site)) as browser:
        async with browser.session(make_ctx(tmp_path, run_id="before")) as s:
            assert "Page A talks" in (await s.call(call("open", id=site + "/a"))).text
        backend = browser._open
        assert isinstance(backend, PlaywrightBackend)
        await (await backend.browser()).close()  # as if Chromium had crashed between runs
        async with browser.session(make_ctx(tmp_path, run_id="after")) as s:
            assert "Page A talks" in (await s.call(call("open", id=site + "/a"))).text
