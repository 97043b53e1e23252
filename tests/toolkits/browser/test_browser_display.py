"""The model-visible side: namespace, page display, scrolling, find, search, errors, citations."""

from __future__ import annotations

from pathlib import Path

import openai_harmony as oh
import pytest
from browser_helpers import call, make_ctx

from agent.errors import InvalidArguments, ToolError
from agent.harmony.codec import HarmonyCodec, SystemSettings
from agent.harmony.vocab import load_encoding
from toolkits.browser import BrowserConfig, BrowserToolkit, browser_namespace

pytestmark = pytest.mark.anyio


def _config(site: str) -> BrowserConfig:
    return BrowserConfig(
        search="playwright", open="http",
        playwright={"search_url": site + "/search?q={query}&format=json"},  # type: ignore[arg-type]
    )


def test_namespace_renders_exactly_as_trained() -> None:
    settings = SystemSettings(conversation_start_date="2025-06-28")
    codec = HarmonyCodec()
    ours = codec.system_message(settings, [browser_namespace()])
    trained = codec.system_message(settings, [])
    content = trained.content[0]
    assert isinstance(content, oh.SystemContent)
    trained = oh.Message.from_role_and_content(oh.Role.SYSTEM, content.with_browser_tool())
    enc = load_encoding()
    convo = lambda m: enc.render_conversation(oh.Conversation.from_messages([m]))  # noqa: E731
    assert enc.decode_utf8(convo(ours)) == enc.decode_utf8(convo(trained))
    ns = BrowserToolkit().namespace()
    assert (ns.name, ns.placement) == ("browser", "system")
    assert [t.name for t in ns.tools] == ["search", "open", "find"]


async def test_search_open_scroll_find_golden(site: str, tmp_path: Path) -> None:
    port = site.rsplit(":", 1)[1]
    async with BrowserToolkit(_config(site)) as browser, browser.session(make_ctx(tmp_path)) as s:
        search = await s.call(call("search", query="apples"))
        assert search.text == (
            "[0] apples\n**viewing lines [0 - 5] of 5**\n\n"
            "L0: \nL1: URL: \nL2: # Search Results\nL3: \n"
            f"L4:   * 【0†Page A for apples†127.0.0.1:{port}】 About apples.\n"
            f"L5:   * 【1†Long page†127.0.0.1:{port}】 Many lines."
        )
        page_a = await s.call(call("open", id=0))
        assert page_a.text == (
            f"[1] Page A ({site}/a)\n**viewing lines [0 - 6] of 6**\n\n"
            f"L0: \nL1: URL: {site}/a\nL2: ## About page A\nL3: \n"
            "L4: Page A talks about apples and avocados.\nL5: \nL6: Go 【0†home】."
        )
        assert page_a.metadata == {
            "url": f"{site}/a", "title": "Page A", "cursor": 1, "cite_url": f"{site}/a"
        }
        long = await s.call(call("open", cursor=0, id=1))  # a link of an earlier page
        head = long.text.split("\n")
        assert head[0] == f"[2] Long page ({site}/long)"
        assert head[1].startswith("**viewing lines [0 - ") and head[1].endswith("] of 602**")
        assert head[3:6] == ["L0: ", f"L1: URL: {site}/long", "L2: # Long"]
        scrolled = await s.call(call("open", loc=100, num_lines=3))  # scroll the current page
        assert scrolled.text == (
            f"[3] Long page ({site}/long)\n**viewing lines [100 - 102] of 602**\n\n"
            "L100: Paragraph 48: the quick brown fox jumps over the lazy dog number 48.\n"
            "L101: \nL102: Paragraph 49: the quick brown fox jumps over the lazy dog number 49."
        )
        found = await s.call(call("find", pattern="Number 123."))
        assert found.text == (
            f"[4] Find results for text: `number 123.` in `Long page` "
            f"({site}/long/find?pattern=number 123.)\n**viewing lines [0 - 4] of 4**\n\n"
            "L0: # 【0†match at L250】\n"
            "L1: Paragraph 123: the quick brown fox jumps over the lazy dog number 123.\n"
            "L2: \nL3: Paragraph 124: the quick brown fox jumps over the lazy dog number 124.\nL4: "
        )
        back = await s.call(call("open", id=0))  # a find match opens the page near it
        assert back.text.split("\n")[1] .startswith("**viewing lines [246 - ")
        none = await s.call(call("find", pattern="zebra", cursor=2))
        assert none.text.endswith("L0: No `find` results for pattern: `zebra`")


async def test_view_is_about_1024_tokens(site: str, tmp_path: Path) -> None:
    async with BrowserToolkit(_config(site)) as browser, browser.session(make_ctx(tmp_path)) as s:
        reply = await s.call(call("open", id=site + "/long"))
    shown = reply.text.split("\n\n", 1)[1]
    tokens = len(load_encoding().encode(shown, allowed_special=set()))
    assert 900 <= tokens <= 1100


async def test_unicode_table_pdf_text_pages(site: str, tmp_path: Path) -> None:
    async with BrowserToolkit(_config(site)) as browser, browser.session(make_ctx(tmp_path)) as s:
        uni = await s.call(call("open", id=site + "/unicode"))
        assert "L2: Grüße aus Köln — 日本語のテキスト — emoji 🎉 — brackets 〖not a link〗." in uni.text
        assert uni.text.startswith("[0] Ünïcödé (")
        table = await s.call(call("open", id=site + "/table"))
        assert "L2: | Fruit | Colour | Price |\nL3: | Apple | Red | 1.20 |" in table.text
        pdf = await s.call(call("open", id=site + "/doc.pdf"))
        assert "Hello from a PDF document" in pdf.text
        txt = await s.call(call("open", id=site + "/notes.txt"))
        assert "L2: plain text notes\nL3: second line" in txt.text
        src = await s.call(call("open", id=site + "/a", view_source=True))
        assert "&lt;" not in src.text and "<title>Page A</title>" in src.text


async def test_errors_are_phrased_as_trained(site: str, tmp_path: Path) -> None:
    async with BrowserToolkit(_config(site)) as browser, browser.session(make_ctx(tmp_path)) as s:
        with pytest.raises(ToolError, match=r"^No pages to access!$"):
            await s.call(call("open", id=3))
        await s.call(call("open", id=site + "/a"))
        with pytest.raises(ToolError, match=r"^Invalid link id `7`\.$"):
            await s.call(call("open", id=7))
        with pytest.raises(ToolError, match=r"^Cursor `5` is out of range\. Available cursor indices: \[0 - 0\]\.$"):
            await s.call(call("find", pattern="x", cursor=5))
        with pytest.raises(ToolError, match=r"^Invalid location parameter: `50`\. Cannot exceed page maximum of 6\.$"):
            await s.call(call("open", loc=50))
        assert len(s.pages) == 1  # a failed view leaves the stack as it was
        await s.call(call("find", pattern="apples"))
        with pytest.raises(ToolError, match="Cannot run `find` on search results page or find results page"):
            await s.call(call("find", pattern="x"))
        with pytest.raises(InvalidArguments, match="`pattern`: Field required"):
            await s.call(call("find"))
        with pytest.raises(InvalidArguments, match="not valid JSON"):
            await s.call(call("open").__class__("browser.open", "browser", "open", "{nope"))
        with pytest.raises(InvalidArguments, match="Unknown function: click"):
            await s.call(call("click"))


async def test_citations_become_links_with_quotes(site: str, tmp_path: Path) -> None:
    async with BrowserToolkit(_config(site)) as browser, browser.session(make_ctx(tmp_path)) as s:
        await s.call(call("search", query="apples"))
        await s.call(call("open", id=0))
        cited = s.cite("Apples and avocados 【1†L4】, see 【0†L4-L5】 and 【9†L1】.")
    assert cited.text.startswith(f"Apples and avocados  ([127.0.0.1:{site.rsplit(':', 1)[1]}]({site}/a)) ,")
    assert cited.text.endswith("see 【0†L4-L5】 and 【9†L1】.")  # search page / unknown cursor kept
    (c,) = cited.citations
    assert (c.url, c.start_line, c.end_line, c.quote) == (
        f"{site}/a", 4, 4, "Page A talks about apples and avocados."
    )
    assert cited.text[c.start_index : c.end_index].startswith(" ([127.0.0.1")
