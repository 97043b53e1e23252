"""HTML to display text: structure, link markers and their URLs, and the token-fitted view."""

from __future__ import annotations

import itertools
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.harmony.vocab import load_encoding
from toolkits.browser.convert import html_to_page
from toolkits.browser.links import Links
from toolkits.browser.page import get_domain, wrap_lines
from toolkits.browser.viewport import _token_widths, end_line, numbered

BASE = "http://127.0.0.1:8000/dir/p"

MIXED = """<html><head><title> Mixed  page </title></head><body>
<nav><a href="/">Home</a> | <a href="/x">X</a></nav>
<article><h1>Title  <small>sub</small></h1>
<p>Text with <code> a  code </code>, x<sup>2</sup>, H<sub>2</sub>O and a note<sup><a href="#n1">[1]</a></sup>.</p>
<ol><li>one<ul><li>nested <a href="https://ex.com/a?b=1">ext</a></li></ul></li><li>two</li></ol>
<blockquote>Quoted <em>text</em></blockquote><dl><dt>term</dt><dd>definition</dd></dl>
<table><thead><tr><th>A</th><th>B</th></tr></thead><tbody>
<tr><td>1 <a href="/r">r</a></td><td><img src="x.png" alt="pic"></td></tr>
<tr><td>in<table><tr><td>x</td><td>y</td></tr></table></td><td>z</td></tr></tbody></table>
<a href="/img"><img src="y.png"></a><br>line<br>two<hr>
<pre>  code
   block &lt;x&gt;</pre>
<p>【tricky】 ◼ zero\u200bwidth&nbsp;space <a href="//cdn.ex.com/f">cdn</a> <a href="../up">up</a>
<a href="mailto:a@b">mail</a> <a href="/r">again</a></p>
<script>var hidden = 1</script><style>p {}</style><!-- comment --><p>&lt;|endoftext|&gt; quoted</p>
</article></body></html>"""


def test_structure_markers_and_urls() -> None:
    page = html_to_page(MIXED, BASE)
    assert page.title == "Mixed page"
    assert page.text == (
        f"\nURL: {BASE}\n"
        "【0†Home】 | 【1†X】\n\n"
        "# Title sub\n\n"
        "Text with `a code`, x^{2}, H_{2}O and a note[1].\n\n"
        "  1. one\n    * nested 【2†ext†ex.com】\n  2. two\n\n"
        "> Quoted text\n\n"
        "term\ndefinition\n\n"
        "| A | B |\n| 1 【3†r】 | [Image 0: pic] |\n| in | x | y | | z |\n\n"
        "[Image 1]\nline\ntwo\n\n* * *\n\n"
        "```\n  code\n   block <x>\n```\n\n"
        "〖tricky〗 ◾ zerowidth space 【4†cdn†cdn.ex.com】 【5†up】 mail 【3†again】\n\n"
        "<|endoftext|> quoted"
    )
    assert page.urls == {
        "0": "http://127.0.0.1:8000/", "1": "http://127.0.0.1:8000/x", "2": "https://ex.com/a?b=1",
        "3": "http://127.0.0.1:8000/r", "4": "http://cdn.ex.com/f", "5": "http://127.0.0.1:8000/up",
    }


def test_arxiv_links_open_on_ar5iv_as_trained() -> None:
    page = html_to_page("<a href='https://arxiv.org/abs/1706.03762'>Attention</a>", BASE)
    assert page.text.endswith("【0†Attention†arxiv.org】")
    assert page.urls == {"0": "https://ar5iv.org/abs/1706.03762"}


def test_bytes_empty_and_broken_documents() -> None:
    assert html_to_page(b"<p>caf\xc3\xa9</p>", BASE).text == f"\nURL: {BASE}\ncafé"
    empty = html_to_page("", BASE)
    assert (empty.text, empty.title) == (f"\nURL: {BASE}\n", "127.0.0.1:8000")
    broken = html_to_page("<div><p>unclosed <b>bold <i>both</div> after", BASE)
    assert broken.text.endswith("unclosed bold both\n\nafter")


@pytest.mark.parametrize(
    "href",
    ["/p/1", "https://other.example/1", "//cdn.x/y", "rel/x", "../up", "/a/../b", "?q=2",
     "http://x.com?q=1", "https://u:p@h.com/p", "/a b", "HTTP://X.com/", "/.hidden", "/x/.",
     "//", "http://", "/p?x=../y", "http://[::1]:8080/v6"],
)
@pytest.mark.parametrize("base", [BASE, "https://a.b:8080/x/y?z=1#f"])
def test_link_fast_paths_resolve_like_urljoin(base: str, href: str) -> None:
    link = urljoin(base, href)
    assert Links(base, get_domain(base))._resolve(href) == (link, get_domain(link))


def _reference_end(lines: list[str], loc: int, view_tokens: int) -> int:
    """The trained rule: tokenize (view_tokens + 1) * longest-token characters of the numbered
    text, cut at token ``view_tokens``, show every line the cut touches."""
    widths = _token_widths()
    text = numbered(lines[loc:], offset=loc)
    if len(text) <= view_tokens:
        return len(lines)
    tokens = load_encoding().encode(
        text[: (view_tokens + 1) * max(widths)], allowed_special=set(), disallowed_special=()
    )
    if len(tokens) <= view_tokens:
        return len(lines)
    cut = sum(widths[t] for t in itertools.islice(tokens, view_tokens))
    return min(loc + text[:cut].count("\n") + 1, len(lines))


_WORDS = st.sampled_from(
    ["apple", "Köln", "日本語", "🎉", "<|endoftext|>", "x" * 90, " ", "\t", "a-b", "123", "—", "été"]
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(_WORDS, max_size=25).map(" ".join), min_size=1, max_size=300),
    st.sampled_from([8, 64, 1024]),
    st.floats(0, 1),
)
def test_view_fits_the_same_lines_as_the_trained_rule(
    paragraphs: list[str], view_tokens: int, where: float
) -> None:
    lines = wrap_lines("\n".join(paragraphs))
    loc = int(where * (len(lines) - 1))
    assert end_line(lines, loc, -1, view_tokens) == _reference_end(lines, loc, view_tokens)
