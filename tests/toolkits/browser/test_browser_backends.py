"""Search/contents APIs end to end against loopback fakes (real httpx and exa-py clients),
and recording a run then replaying it offline."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from browser_fakes import API_KEY, serve_api
from browser_helpers import call, make_ctx

from agent.errors import PolicyDenied, ToolError
from toolkits.browser import ApiConfig, BrowserConfig, BrowserToolkit

pytestmark = pytest.mark.anyio


def _api(base: str, key: str = API_KEY) -> ApiConfig:
    return ApiConfig(api_key=key, base_url=base, retries=2, backoff_s=0.01)


async def test_youcom_search_and_contents(site: str, tmp_path: Path) -> None:
    with serve_api("youcom", site) as (base, state):
        config = BrowserConfig(search="youcom", open="youcom", youcom=_api(base))
        async with BrowserToolkit(config) as browser, browser.session(make_ctx(tmp_path)) as s:
            search = await s.call(call("search", query="red apples", topn=3))
            page = await s.call(call("open", id=0))
            with pytest.raises(PolicyDenied):
                await s.call(call("open", id="file:///etc/passwd"))
    assert "L4:   * 【0†Apples: red apples†127.0.0.1:" in search.text
    assert "】 Apples are red. Some are green." in search.text
    assert "【2†News: Köln†127.0.0.1:" in search.text  # news results follow web results
    assert page.text.startswith(f"[1] Fetched title ({site}/a)")
    assert "L2: # Fetched via API" in page.text
    get, post = state.requests
    assert (get["method"], get["path"], get["query"]) == (
        "GET", "/v1/search", {"query": ["red apples"], "count": ["20"]}
    )
    assert get["headers"]["X-API-Key"] == API_KEY
    assert (post["path"], post["body"]) == (
        "/v1/contents", {"urls": [f"{site}/a"], "livecrawl_formats": "html"}
    )


async def test_youcom_retries_then_reports(site: str, tmp_path: Path) -> None:
    with serve_api("youcom", site) as (base, state):
        config = BrowserConfig(search="youcom", youcom=_api(base))
        async with BrowserToolkit(config) as browser, browser.session(make_ctx(tmp_path)) as s:
            state.fail_first = 2  # two 429s, then success
            assert "Search Results" in (await s.call(call("search", query="q"))).text
            state.fail_first = 10
            with pytest.raises(ToolError, match=r"^Error during search for `q2`: YouComBackend error 429"):
                await s.call(call("search", query="q2"))
    assert len(state.requests) == 3 + 3


async def test_youcom_honours_retry_after(site: str, tmp_path: Path) -> None:
    with serve_api("youcom", site) as (base, state):
        config = BrowserConfig(search="youcom", youcom=_api(base))
        async with BrowserToolkit(config) as browser, browser.session(make_ctx(tmp_path)) as s:
            state.fail_first, state.retry_after = 1, "0.4"
            start = time.perf_counter()
            assert "Search Results" in (await s.call(call("search", query="q"))).text
            assert time.perf_counter() - start >= 0.4  # not the 0.01 s backoff
            state.fail_first, state.retry_after = 1, "3600"  # too long: answered at once
            with anyio.fail_after(15), pytest.raises(ToolError, match="YouComBackend error 429"):
                await s.call(call("search", query="q2"))  # waiting an hour would trip the guard


async def test_youcom_bad_key(site: str, tmp_path: Path) -> None:
    with serve_api("youcom", site) as (base, _state):
        config = BrowserConfig(search="youcom", youcom=_api(base, key="wrong"))
        async with BrowserToolkit(config) as browser, browser.session(make_ctx(tmp_path)) as s:
            with pytest.raises(ToolError, match="error 401"):
                await s.call(call("search", query="q"))


async def test_exa_through_exa_py(site: str, tmp_path: Path) -> None:
    with serve_api("exa", site) as (base, state):
        config = BrowserConfig(search="exa", open="exa", exa=_api(base))
        async with BrowserToolkit(config) as browser, browser.session(make_ctx(tmp_path)) as s:
            state.fail_first = 1  # one 429 first: retried
            search = await s.call(call("search", query="apples"))
            page = await s.call(call("open", id=1))
    assert "L4:   * 【0†Exa apples†127.0.0.1:" in search.text and "】 Apples summary." in search.text
    assert page.text.startswith(f"[1] Exa page ({site}/table)")
    _429, search_req, contents_req = state.requests
    assert search_req["path"] == "/search" and search_req["headers"]["x-api-key"] == API_KEY
    assert search_req["body"]["query"] == "apples" and search_req["body"]["numResults"] == 20
    assert search_req["body"]["contents"] == {"text": True, "summary": True}
    assert contents_req["path"] == "/contents" and contents_req["body"]["urls"] == [f"{site}/table"]
    assert contents_req["body"]["text"] == {"includeHtmlTags": True}


async def test_record_then_replay_offline(site: str, tmp_path: Path) -> None:
    recording = tmp_path / "rec-{run_id}.jsonl"
    with serve_api("youcom", site) as (base, _state):
        config = BrowserConfig(search="youcom", open="http", youcom=_api(base), record_to=recording)
        async with BrowserToolkit(config) as browser, browser.session(make_ctx(tmp_path)) as s:
            live = [
                (await s.call(call("search", query="apples"))).text,
                (await s.call(call("open", id=0))).text,
                (await s.call(call("find", pattern="avocado"))).text,
            ]
            with pytest.raises(ToolError):
                await s.call(call("open", id=site + "/bin"))
    # the API server and the site are not used any more: replay needs neither
    replay = BrowserConfig(search="recorded", open="recorded", replay_from=tmp_path / "rec-run-1.jsonl")
    async with BrowserToolkit(replay) as browser, browser.session(make_ctx(tmp_path)) as s:
        again = [
            (await s.call(call("search", query="apples"))).text,
            (await s.call(call("open", id=0))).text,
            (await s.call(call("find", pattern="avocado"))).text,
        ]
        with pytest.raises(ToolError, match="cannot display content of type"):
            await s.call(call("open", id=site + "/bin"))
        with pytest.raises(ToolError, match="no recorded answer"):
            await s.call(call("search", query="pears"))
    assert again == live


async def test_plain_page_fetch_retries_server_errors(site: str, tmp_path: Path) -> None:
    """A GET answered 429/5xx is asked again (twice, 0.25 s then 0.5 s); then the model hears it."""
    async with BrowserToolkit(BrowserConfig(open="http")) as browser, \
            browser.session(make_ctx(tmp_path)) as s:
        page = await s.call(call("open", id=f"{site}/flaky?key=twice&fail=2"))
        assert "made it" in page.text
        page = await s.call(call("open", id=f"{site}/flaky?key=rate&fail=1&status=429&wait=0"))
        assert "made it" in page.text
        started = time.monotonic()
        with pytest.raises(ToolError, match="HTTP 503"):
            await s.call(call("open", id=f"{site}/flaky?key=thrice&fail=3"))
        assert time.monotonic() - started >= 0.7  # it did wait and retry
        started = time.monotonic()
        with pytest.raises(ToolError, match="HTTP 503"):  # asks for 60 s: reported at once
            await s.call(call("open", id=f"{site}/flaky?key=later&fail=1&wait=60"))
        assert time.monotonic() - started < 0.5
