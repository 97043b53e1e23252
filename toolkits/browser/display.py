"""The trained browsing display: ``[cursor] title (url)``, a scrollbar, numbered lines; find pages.

Every string here is what gpt-oss saw in training (openai/gpt-oss ``simple_browser``); change
nothing without checking the reference.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from agent.errors import ToolError
from toolkits.browser.page import Extract, PageContents, maybe_truncate
from toolkits.browser.viewport import end_line, numbered

FIND_PAGE_LINK_FORMAT = "# 【{idx}†{title}】"
_PARTIAL_INITIAL_LINK = re.compile(r"^[^【】]*】")
_PARTIAL_FINAL_LINK = re.compile(r"【\d*(?:†(?P<content>[^†】]*)(?:†[^†】]*)?)?$")
_LINK = re.compile(r"【\d+†(?P<content>[^†】]+)(?:†[^†】]+)?】")


def render_view(
    page: PageContents, cursor: int, loc: int, num_lines: int, view_tokens: int
) -> str:
    """The page as the model sees it, from line ``loc``.

    Raises:
        ToolError: ``loc`` is past the end of the page.
    """
    lines = page.lines
    total = len(lines)
    if loc >= total:
        raise ToolError(
            f"Invalid location parameter: `{loc}`. Cannot exceed page maximum of {total - 1}."
        )
    end = end_line(lines, loc, num_lines, view_tokens)
    body = numbered(lines[loc:end], offset=loc)
    header = page.title
    domain = maybe_truncate(unquote(page.url))
    if domain:
        header += f" ({domain})"
    header += f"\n**viewing lines [{loc} - {end - 1}] of {total - 1}**\n\n"
    return f"[{cursor}] {header}{body}"


def strip_links(text: str) -> str:
    """Link markers replaced by their text (find matches the words, not the ids)."""
    text = _PARTIAL_INITIAL_LINK.sub("", text)
    text = _PARTIAL_FINAL_LINK.sub(lambda m: m.group("content") or "", text)
    return _LINK.sub(lambda m: m.group("content"), text)


def find_page(
    pattern: str, page: PageContents, max_results: int = 50, num_show_lines: int = 4
) -> PageContents:
    """A page listing case-insensitive matches of ``pattern`` (already lower-cased)."""
    lines = strip_links("\n".join(page.lines)).split("\n")
    chunks: list[str] = []
    snippets: dict[str, Extract] = {}
    line_idx = 0
    while line_idx < len(lines) and len(chunks) < max_results:
        if pattern not in lines[line_idx].lower():
            line_idx += 1
            continue
        idx = len(chunks)
        snippet = "\n".join(lines[line_idx : line_idx + num_show_lines])
        title = FIND_PAGE_LINK_FORMAT.format(idx=idx, title=f"match at L{line_idx}")
        chunks.append(f"{title}\n{snippet}")
        snippets[str(idx)] = Extract(page.url, snippet, f"#{idx}", line_idx)
        line_idx += num_show_lines
    text = "\n\n".join(chunks) if chunks else f"No `find` results for pattern: `{pattern}`"
    return PageContents(
        url=f"{page.url}/find?pattern={quote(pattern)}",
        title=f"Find results for text: `{pattern}` in `{page.title}`",
        text=text,
        urls={k: page.url for k in snippets},
        snippets=snippets,
    )
