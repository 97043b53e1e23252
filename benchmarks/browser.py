"""Browser toolkit benchmark: open/find latency (HTTP and Chromium) on a loopback site, a shared
Chromium against one per run for 20 concurrent runs, and HTML-to-text against html2text.

Run: .venv/bin/python benchmarks/browser.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import html2text

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "toolkits" / "browser")]

from browser_helpers import call, make_ctx  # noqa: E402
from browser_site import serve_site  # noqa: E402

from toolkits.browser import BrowserConfig, BrowserToolkit  # noqa: E402
from toolkits.browser.convert import html_to_page  # noqa: E402

TMP = Path("/tmp/oss-agent-bench-browser")


def big_page(target: int = 250_000) -> str:
    parts, i = [], 0
    while sum(map(len, parts)) < target:
        parts.append(
            f"<h2>Section {i}</h2><p>Some <b>bold</b> text with a <a href='/p/{i}'>link {i}</a> and "
            f"<a href='https://other.example/{i}'>an external one</a>, then more words to read "
            f"about topic {i}.</p><ul><li>first item {i}</li><li>second <i>item</i></li></ul>"
            f"<table><tr><th>k</th><th>v</th></tr><tr><td>a{i}</td><td>{i}</td></tr></table>"
            f"<pre>code line {i}\n  indented</pre>"
        )
        i += 1
    return "<html><head><title>Big</title></head><body>" + "".join(parts) + "</body></html>"


def reference_html2text(html: str) -> str:
    h = html2text.HTML2Text()  # the reference's settings
    h.ignore_links = h.ignore_images = h.ignore_tables = h.unicode_snob = h.ignore_emphasis = True
    h.body_width = 0
    return h.handle(html)


def best_ms(fn: Callable[[], object], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return min(times)


async def p50_ms(fn: Callable[[int], Awaitable[object]], n: int) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        await fn(i)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def latency(site: str, kind: str, n: int) -> tuple[float, float]:
    async with BrowserToolkit(BrowserConfig(open=kind)) as browser:  # type: ignore[arg-type]
        async with browser.session(make_ctx(TMP)) as s:
            await s.call(call("open", id=f"{site}/long?warm"))
            open_ms = await p50_ms(lambda i: s.call(call("open", id=f"{site}/long?i={i}")), n)
            find_ms = await p50_ms(lambda i: s.call(call("find", pattern=f"number {i}7", cursor=1)), n)
    return open_ms, find_ms


async def one_run(browser: BrowserToolkit, site: str, i: int) -> None:
    async with browser.session(make_ctx(TMP, run_id=f"r{i}", page_timeout_s=120.0)) as s:
        await s.call(call("open", id=f"{site}/js?run={i}"))
        await s.call(call("find", pattern="marmalade"))


async def concurrent_runs(site: str, runs: int, shared: bool) -> float:
    config = BrowserConfig(open="playwright")
    start = time.perf_counter()
    if shared:
        async with BrowserToolkit(config) as browser, anyio.create_task_group() as tg:
            for i in range(runs):
                tg.start_soon(one_run, browser, site, i)
    else:
        async def own(i: int) -> None:
            async with BrowserToolkit(config) as browser:
                await one_run(browser, site, i)

        async with anyio.create_task_group() as tg:
            for i in range(runs):
                tg.start_soon(own, i)
    return time.perf_counter() - start


async def main() -> None:
    html = big_page()
    reference = best_ms(lambda: reference_html2text(html))
    ours = best_ms(lambda: html_to_page(html, "http://bench.local/page"))
    print(f"html->text, {len(html) // 1000} KB page: html2text (reference) {reference:.1f} ms | "
          f"ours {ours:.1f} ms | speed-up {reference / ours:.1f}x")
    with serve_site() as site:
        http_open, http_find = await latency(site, "http", 50)
        print(f"HTTP backend:       open p50 {http_open:.1f} ms, find p50 {http_find:.1f} ms")
        pw_open, pw_find = await latency(site, "playwright", 10)
        print(f"Playwright backend: open p50 {pw_open:.1f} ms, find p50 {pw_find:.1f} ms")
        shared = await concurrent_runs(site, 20, shared=True)
        per_run = await concurrent_runs(site, 20, shared=False)
        print(f"20 concurrent runs: shared Chromium {shared:.2f} s | one Chromium per run "
              f"{per_run:.2f} s | ratio {per_run / shared:.1f}x")


if __name__ == "__main__":
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(main)
