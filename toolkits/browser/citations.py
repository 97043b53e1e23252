"""Turn the model's ``【cursor†Lx-Ly】`` citations into links and quoted line ranges.

gpt-oss cites what it read as ``【6†L9-L11】`` (cursor 6, lines 9 to 11). :func:`resolve_citations`
replaces each marker whose cursor is known with `` ([domain](url)) `` as the reference does, and
returns the cited lines so a UI can show the quote behind every link. Unknown cursors and search
pages (which have no URL) keep their marker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from toolkits.browser.display import strip_links
from toolkits.browser.page import PageContents, get_domain

CITATION = re.compile(r"【(?P<cursor>\d+)†(?P<content>[^†】]+)(?:†[^†】]+)?】")
_LINES = re.compile(r"^L(?P<start>\d+)(?:-L?(?P<end>\d+))?$")


@dataclass(frozen=True, slots=True)
class Citation:
    """One resolved citation: where it sits in the new text and what it quotes."""

    cursor: int
    url: str
    title: str
    domain: str
    start_line: int | None
    end_line: int | None
    quote: str
    start_index: int
    end_index: int


@dataclass(frozen=True, slots=True)
class CitedText:
    text: str
    citations: tuple[Citation, ...]


def _quote(page: PageContents, start: int | None, end: int | None) -> str:
    if start is None:
        return ""
    lines = page.lines
    last = min(end if end is not None else start, len(lines) - 1)
    return strip_links("\n".join(lines[start : last + 1])).strip()


def resolve_citations(text: str, pages: Sequence[PageContents]) -> CitedText:
    """Replace citation markers in ``text`` by links to the pages they cite (by cursor)."""
    out: list[str] = []
    citations: list[Citation] = []
    last = 0
    length = 0
    for match in CITATION.finditer(text):
        before = text[last : match.start()]
        out.append(before)
        length += len(before)
        last = match.end()
        cursor = int(match.group("cursor"))
        page = pages[cursor] if cursor < len(pages) else None
        if page is None or not page.url:
            out.append(match.group(0))
            length += len(match.group(0))
            continue
        url = unquote(page.url).split("/find?pattern=")[0] if page.snippets else page.url
        domain = get_domain(url)
        replacement = f" ([{domain}]({url})) "
        lines = _LINES.match(match.group("content").strip())
        start = int(lines.group("start")) if lines else None
        end = int(lines.group("end")) if lines and lines.group("end") else start
        citations.append(
            Citation(
                cursor, url, page.title, domain, start, end, _quote(page, start, end),
                length, length + len(replacement),
            )
        )
        out.append(replacement)
        length += len(replacement)
    out.append(text[last:])
    return CitedText("".join(out), tuple(citations))
