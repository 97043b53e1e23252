"""Browser toolkit benchmark, every comparison side by side in one run:

* HTML to text on a 250 KB page: ours (lexbor + one iterative walk) against html2text with the
  reference's settings; best of N wall and CPU time, interleaved, plus how many of html2text's
  words our text keeps (legibility);
* ``open``/``find`` p50 on a loopback site (served by another process), HTTP backend and
  Playwright backend;
* 20 concurrent runs opening a JavaScript page: one shared Chromium (a context per run) against
  one Chromium launched per run; wall time and CPU seconds of this process and its children.

The load average is printed with each section: the machine is shared, and timings taken under a
high load mean little.

Run: .venv/bin/python benchmarks/browser.py [--chromium PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import anyio
import html2text
from selectolax.lexbor import LexborHTMLParser

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "toolkits" / "browser")]

from browser_helpers import call, make_ctx  # noqa: E402
from browser_site import long_page, serve_site  # noqa: E402

from toolkits.browser import BrowserConfig, BrowserToolkit  # noqa: E402
from toolkits.browser.backends.chromium import chromium_path  # noqa: E402
from toolkits.browser.config import PlaywrightConfig  # noqa: E402
from toolkits.browser.convert import html_to_page  # noqa: E402
from toolkits.browser.display import strip_links  # noqa: E402

TMP = Path("/tmp/oss-agent-bench-browser")
_WORD = re.compile(r"[^\W_]+")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def big_page(target: int = 250_000) -> str:
    parts, i, size = [], 0, 0
    while size < target:
        part = (
            f"<h2>Section {i}</h2><p>Some <b>bold</b> text with a <a href='/p/{i}'>link {i}</a> and "
            f"<a href='https://other.example/{i}'>an external one</a>, then more words to read "
            f"about topic {i}.</p><ul><li>first item {i}</li><li>second <i>item</i></li></ul>"
            f"<table><tr><th>k</th><th>v</th></tr><tr><td>a{i}</td><td>{i}</td></tr></table>"
            f"<pre>code line {i}\n  indented</pre>"
        )
        parts.append(part)
        size += len(part)
        i += 1
    return "<html><head><title>Big</title></head><body>" + "".join(parts) + "</body></html>"


def reference_html2text(html: str) -> str:
    h = html2text.HTML2Text()  # the reference's settings
    h.ignore_links = h.ignore_images = h.ignore_tables = h.unicode_snob = h.ignore_emphasis = True
    h.body_width = 0
    return h.handle(html)


_TAGS_BETWEEN_WORDS = re.compile(r"(?<=\w)((<[^>]*>)+)(?=\w)")


def reference_pipeline(html: str) -> str:
    """html2text as the reference runs it: a space first put between tags that join words
    (table cells, list items), so "<td>k</td><td>v</td>" does not read "kv"."""
    return reference_html2text(_TAGS_BETWEEN_WORDS.sub(r" \1", html))


def ours(html: str) -> str:
    return html_to_page(html, "http://bench.local/page").text


def interleaved_best(fns: dict[str, Callable[[], object]], n: int = 9) -> dict[str, tuple[float, float]]:
    """Best wall and CPU milliseconds of each function, the functions taking turns."""
    best = {name: (float("inf"), float("inf")) for name in fns}
    for _ in range(n):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            w, c = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
            best[name] = (min(best[name][0], w), min(best[name][1], c))
    return best


def words(text: str) -> set[str]:
    return set(_WORD.findall(strip_links(text).lower()))


def html_section() -> None:
    html = big_page()
    print(f"## HTML -> text, {len(html) // 1000} KB page ({load()})")
    best = interleaved_best({"html2text": lambda: reference_html2text(html), "ours": lambda: ours(html)})
    (ref_w, ref_c), (our_w, our_c) = best["html2text"], best["ours"]
    print(f"html2text (reference settings): {ref_w:7.1f} ms wall, {ref_c:7.1f} ms CPU")
    print(f"ours (lexbor, iterative walk):  {our_w:7.1f} ms wall, {our_c:7.1f} ms CPU")
    print(f"speed-up: {ref_w / our_w:.1f}x wall, {ref_c / our_c:.1f}x CPU")
    # Legibility: the page's words (its text nodes, split apart) each output still has as words;
    # text run together (html2text joins table cells: "kv", "a00") or dropped counts as lost.
    document = words(LexborHTMLParser(html).body.text(separator=" "))  # type: ignore[union-attr]
    kept = {
        "html2text": words(reference_html2text(html)),
        "html2text after the reference's tag spacing": words(reference_pipeline(html)),
        "ours": words(ours(html)),
    }
    print("legibility, distinct words of the page kept as words: " + ", ".join(
        f"{name} {len(document & found) / len(document):.1%}" for name, found in kept.items()
    ))
    sample_ref = [line for line in reference_pipeline(html).split("\n") if line.strip()][:7]
    sample_our = [line for line in ours(html).split("\n") if line.strip()][1:8]
    print("first lines, html2text (reference pipeline) | ours:")
    for a, b in zip(sample_ref, sample_our, strict=False):
        print(f"  {a[:58]:<58} | {b[:70]}")


def _serve(conn: Connection) -> None:
    with serve_site() as base:
        conn.send(base)
        conn.recv()  # serve until told to stop


@contextlib.contextmanager
def site_process() -> Iterator[str]:
    """The loopback site served from its own process: a real site does not share our GIL."""
    mp = multiprocessing.get_context("spawn")
    parent, child = mp.Pipe()
    proc = mp.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        proc.join(5)


async def p50_ms(fn: Callable[[int], Awaitable[object]], n: int) -> float:
    times = []
    for i in range(n):
        t = time.perf_counter()
        await fn(i)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def latency(site: str, config: BrowserConfig, n: int) -> tuple[float, float]:
    async with BrowserToolkit(config) as browser, browser.session(make_ctx(TMP)) as s:
        await s.call(call("open", id=f"{site}/long?warm"))
        open_ms = await p50_ms(lambda i: s.call(call("open", id=f"{site}/long?i={i}")), n)
        find_ms = await p50_ms(lambda i: s.call(call("find", pattern=f"number {i}7", cursor=1)), n)
    return open_ms, find_ms


async def one_run(browser: BrowserToolkit, site: str, i: int, seen: list[object]) -> None:
    async with browser.session(make_ctx(TMP, run_id=f"r{i}", page_timeout_s=120.0)) as s:
        page = await s.call(call("open", id=f"{site}/js?run={i}"))
        assert "marmalade" in page.text, page.text
        await s.call(call("find", pattern="marmalade"))
        seen.append(browser._open._browser)  # type: ignore[attr-defined]  # which Chromium served it


async def concurrent_runs(
    site: str, config: BrowserConfig, runs: int, shared: bool
) -> tuple[float, float, float, int]:
    """Wall seconds, of which launching the shared Chromium, CPU seconds (this process and its
    children) and how many Chromiums served the runs."""
    seen: list[object] = []
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    start = time.perf_counter()
    launch = 0.0
    if shared:
        async with BrowserToolkit(config) as browser:
            launch = time.perf_counter() - start
            async with anyio.create_task_group() as tg:
                for i in range(runs):
                    tg.start_soon(one_run, browser, site, i, seen)
    else:
        async def own(i: int) -> None:
            async with BrowserToolkit(config) as browser:  # launches its own Chromium
                await one_run(browser, site, i, seen)

        async with anyio.create_task_group() as tg:
            for i in range(runs):
                tg.start_soon(own, i)
    wall = time.perf_counter() - start
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before, strict=True))
    assert len(seen) == runs
    return wall, launch, cpu, len({id(b) for b in seen})


async def main(chromium: str | None) -> None:
    TMP.mkdir(parents=True, exist_ok=True)
    html_section()
    pw_config = BrowserConfig(open="playwright", playwright=PlaywrightConfig(executable_path=chromium))
    with site_process() as site:
        size = len(long_page()) // 1000
        print(f"\n## open / find p50 on a loopback site, a {size} KB page ({load()})")
        http_open, http_find = await latency(site, BrowserConfig(open="http"), 50)
        print(f"HTTP backend:       open p50 {http_open:6.1f} ms, find p50 {http_find:5.1f} ms")
        pw_open, pw_find = await latency(site, pw_config, 20)
        print(f"Playwright backend: open p50 {pw_open:6.1f} ms, find p50 {pw_find:5.1f} ms")

        runs = 20
        print(f"\n## {runs} concurrent runs, each opening a JavaScript page and finding in it")
        print(f"Chromium: {chromium_path(pw_config.playwright)} ({load()})")
        results = {}
        for name, shared in (("shared", True), ("per-run", False), ("shared again", True)):
            results[name] = await concurrent_runs(site, pw_config, runs, shared)
            wall, launch, cpu, browsers = results[name]
            launched = f" (of which {launch:.2f} s launching it)" if shared else ""
            print(f"{name:>12}: {wall:6.2f} s wall{launched}, {cpu:5.1f} CPU-s, {browsers:2d} "
                  f"Chromium launched ({load()})")
        per_run = results["per-run"]
        shared_runs = [results["shared"], results["shared again"]]
        wall = statistics.mean(r[0] for r in shared_runs)
        steady = statistics.mean(r[0] - r[1] for r in shared_runs)
        cpu = statistics.mean(r[2] for r in shared_runs)
        print(f"one Chromium per run / shared (mean of the two shared runs): {per_run[0] / wall:.1f}x "
              f"wall with the shared launch counted, {per_run[0] / steady:.1f}x wall once it is up, "
              f"{per_run[2] / cpu:.1f}x CPU")


if __name__ == "__main__":
    import logging

    import structlog

    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", default=None, help="Chromium executable (default: auto)")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    anyio.run(main, parser.parse_args().chromium)
