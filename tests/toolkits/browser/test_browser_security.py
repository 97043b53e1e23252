"""Policy and limits on every hop: private redirects, schemes, sizes, endless redirects, slowness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from browser_helpers import call, make_ctx

from agent.errors import PolicyDenied, ToolError, ToolTimeout
from policies.config import Budgets
from toolkits.browser import BrowserConfig, BrowserToolkit

pytestmark = pytest.mark.anyio
HTTP = BrowserConfig(search="youcom", open="http")


async def _open(site: str, tmp_path: Path, path: str, **policy: Any) -> str:
    async with BrowserToolkit(HTTP) as browser, browser.session(make_ctx(tmp_path, **policy)) as s:
        return (await s.call(call("open", id=path if "://" in path else site + path))).text


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/to-private", "address 127.0.0.2 is loopback"),
        ("/to-ten", "10.0.0.1"),
        ("/to-file", "the file: scheme is not allowed"),
        ("file:///etc/passwd", "the file: scheme is not allowed"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ],
)
async def test_refused_before_connecting(site: str, tmp_path: Path, path: str, why: str) -> None:
    # 10.0.0.1 is unroutable here: a connection attempt would hang until the 60 s page timeout,
    # far past this guard; a refusal before connecting returns at once.
    with anyio.fail_after(15), pytest.raises(PolicyDenied, match=why) as info:
        await _open(site, tmp_path, path, page_timeout_s=60.0)
    assert info.value.message.startswith("Error fetching URL `")


async def test_denied_domain(site: str, tmp_path: Path) -> None:
    with pytest.raises(PolicyDenied, match="not in allow_domains"):
        await _open(site, tmp_path, "http://localhost.invalid/", allow_domains=["example.org"])


async def test_endless_and_long_redirects(site: str, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"too many redirects \(more than 10"):
        await _open(site, tmp_path, "/loop")
    assert "Page A talks about apples" in await _open(site, tmp_path, "/chain/3")
    with pytest.raises(ToolError, match=r"too many redirects \(more than 2"):
        await _open(site, tmp_path, "/chain/3", max_redirects=2)


async def test_size_limit(site: str, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="over the limit of 100000 bytes"):
        await _open(site, tmp_path, "/huge", max_page_bytes=100_000)
    # under the default limit the 3.2 MB page opens (converted in a worker thread)
    shown = await _open(site, tmp_path, "/huge")
    assert shown.split("\n")[1].startswith("**viewing lines [0 - ") and "L2: big big big" in shown


async def test_slow_and_slowloris_end_in_time(site: str, tmp_path: Path) -> None:
    for path in ("/slow?s=5", "/slowloris"):
        # the server would dribble for 5 s or forever; the page deadline ends it (the guard
        # only catches a hang, it does not time the call)
        with anyio.fail_after(15), pytest.raises(ToolTimeout, match=r"did not load within 1 s"):
            await _open(site, tmp_path, path, page_timeout_s=1.0)


async def test_binary_content_is_refused_clearly(site: str, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="cannot display content of type application/octet-stream"):
        await _open(site, tmp_path, "/bin")


async def test_pages_are_charged_and_cached(site: str, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, budgets=Budgets(browser_pages=2))
    async with BrowserToolkit(HTTP) as browser, browser.session(ctx) as s:
        await s.call(call("open", id=site + "/a"))
        await s.call(call("open", id=0))  # link to "/" : second page
        await s.call(call("open", id=site + "/a"))  # cached: free
        await s.call(call("open", loc=2))  # scrolling: free
        with pytest.raises(PolicyDenied, match="budget exhausted: browser pages opened"):
            await s.call(call("open", id=site + "/table"))
    assert ctx.policy.spent["browser_pages"] == 2


async def test_concurrent_runs_are_isolated(site: str, tmp_path: Path) -> None:
    async with BrowserToolkit(HTTP) as browser:
        results: dict[str, list[str]] = {}

        async def run(name: str, path: str) -> None:
            async with browser.session(make_ctx(tmp_path, run_id=name)) as s:
                await s.call(call("open", id=site + path))
                await anyio.sleep(0.01)
                found = await s.call(call("find", pattern="a"))
                reply = await s.call(call("open", cursor=0, loc=0))
                results[name] = [p.url for p in s.pages]
                assert found.text.startswith("[1] ") and reply.text.startswith("[2] ")

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(run, f"run-{i}", "/a" if i % 2 else "/table")
    for name, urls in results.items():
        expected = "/a" if int(name[-1]) % 2 else "/table"
        assert urls[0] == site + expected and urls[2] == site + expected
