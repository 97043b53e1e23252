"""Turn the model's ``【cursor†Lx-Ly】`` citations into links and quoted line ranges.

gpt-oss cites what it read as ``【6†L9-L11】`` (cursor 6, lines 9 to 11). Each marker whose cursor
is known becomes `` ([domain](url)) `` as the reference does, and the cited lines come back so a UI
can show the quote behind every link. Unknown cursors and search pages (which have no URL) keep
their marker.

Two entry points, one rule:

* :func:`resolve_citations` with the pages of a live session (``BrowserSession.cite``);
* :func:`cite_run` after a run, from its browser tool calls (``RunResult.tool_calls``): each
  reply carries its cursor and URL, and its output holds the numbered lines the model read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from toolkits.browser.display import strip_links
from toolkits.browser.page import PageContents, get_domain

if TYPE_CHECKING:
    from agent.events import ToolCallRecord

CITATION = re.compile(r"【(?P<cursor>\d+)†(?P<content>[^†】]+)(?:†[^†】]+)?】")
_LINES = re.compile(r"^L(?P<start>\d+)(?:-L?(?P<end>\d+))?$")
_SHOWN_LINE = re.compile(r"^L(\d+): (.*)$", re.M)
_MAX_QUOTE_LINES = 200  # a citation of L1-L99999 quotes the start, not the whole page


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


@dataclass(frozen=True, slots=True)
class _Source:
    """What a cursor points at: the URL a citation links to, and its lines by number."""

    url: str
    title: str
    lines: Mapping[int, str]


def cite_url(page: PageContents) -> str:
    """The URL a citation of ``page`` links to: a find page cites the page it searched."""
    if page.snippets is not None and "/find?pattern=" in page.url:
        return unquote(page.url).split("/find?pattern=")[0]
    return page.url


class _PageLines(Mapping[int, str]):
    """A page's wrapped lines as a mapping, without copying them."""

    def __init__(self, page: PageContents) -> None:
        self._lines = page.lines

    def __getitem__(self, key: int) -> str:
        if 0 <= key < len(self._lines):
            return self._lines[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._lines)))

    def __len__(self) -> int:
        return len(self._lines)


def resolve_citations(text: str, pages: Sequence[PageContents]) -> CitedText:
    """Replace citation markers in ``text`` by links to the pages they cite (by cursor)."""
    sources = {i: _Source(cite_url(p), p.title, _PageLines(p)) for i, p in enumerate(pages)}
    return _resolve(text, sources)


def cite_run(text: str, tool_calls: Iterable[ToolCallRecord]) -> CitedText:
    """Resolve the citations of a run's final answer from its browser tool calls.

    Quotes come from the lines each call showed the model (a citation names lines it read).

    Example::

        result = await agent.run("Who won? Cite your sources.")
        cited = cite_run(result.final_answer or "", result.tool_calls)
    """
    sources: dict[int, _Source] = {}
    for record in tool_calls:
        meta = record.metadata
        if record.call.namespace != "browser" or "cursor" not in meta:
            continue
        shown = {int(n): line for n, line in _SHOWN_LINE.findall(record.output)}
        url = str(meta.get("cite_url", meta.get("url", "")))
        sources[int(meta["cursor"])] = _Source(url, str(meta.get("title", "")), shown)
    return _resolve(text, sources)


def _quote(lines: Mapping[int, str], start: int | None, end: int | None) -> str:
    if start is None:
        return ""
    last = min(end if end is not None else start, start + _MAX_QUOTE_LINES - 1)
    picked = [lines[i] for i in range(start, last + 1) if i in lines]
    return strip_links("\n".join(picked)).strip()


def _resolve(text: str, sources: Mapping[int, _Source]) -> CitedText:
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
        source = sources.get(cursor)
        if source is None or not source.url:
            out.append(match.group(0))
            length += len(match.group(0))
            continue
        domain = get_domain(source.url)
        replacement = f" ([{domain}]({source.url})) "
        lines = _LINES.match(match.group("content").strip())
        start = int(lines.group("start")) if lines else None
        end = int(lines.group("end")) if lines and lines.group("end") else start
        citations.append(
            Citation(
                cursor, source.url, source.title, domain, start, end,
                _quote(source.lines, start, end), length, length + len(replacement),
            )
        )
        out.append(replacement)
        length += len(replacement)
    out.append(text[last:])
    return CitedText("".join(out), tuple(citations))
