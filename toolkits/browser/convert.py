"""HTML (and PDF, plain text) to the browser's display text, in one lxml tree walk.

The output follows the conventions the reference gets from html2text (``# `` headings, ``  * ``
list items, blank lines between blocks) and the trained link format ``【id†text†domain】``
(domain omitted for same-site links), but keeps tables as ``| a | b |`` rows and code blocks
fenced, and runs several times faster because it is a single pass with no regex rewriting of
the HTML source.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

import lxml.etree
import lxml.html

from toolkits.browser.page import PageContents, get_domain

_SPECIAL = str.maketrans({"【": "〖", "】": "〗", "◼": "◾", "\u200b": None})
_WS = re.compile(r"\s+")
_BLANKS = re.compile(r"\n(?:[ \t]*\n)+")

_DROP = frozenset(
    "script style noscript template head svg math iframe object embed canvas select "
    "button input textarea".split()
)
_BLOCK = frozenset(
    "p div section article header footer main nav aside form fieldset figure figcaption "
    "address details summary center dl dt dd caption body html".split()
)
_HEADINGS = {f"h{i}": i for i in range(1, 7)}


@dataclass
class _Writer:
    """Collects output, collapsing whitespace and emitting block breaks lazily."""

    out: list[str] = field(default_factory=list)
    newlines: int = 2  # newlines owed before the next text (2 at start: nothing is written)
    space: bool = False
    started: bool = False

    def text(self, s: str) -> None:
        s = _WS.sub(" ", s.translate(_SPECIAL))
        if not s:
            return
        if s[0] == " ":
            self.space = True
            s = s[1:]
        if not s:
            return
        self._flush()
        if s[-1] == " ":
            self.out.append(s[:-1])
            self.space = True
        else:
            self.out.append(s)

    def raw(self, s: str) -> None:
        self._flush()
        self.out.append(s)

    def _flush(self) -> None:
        if self.newlines:
            if self.started:
                self.out.append("\n" * self.newlines)
            self.newlines = 0
        elif self.space:
            self.out.append(" ")
        self.space = False
        self.started = True

    def block(self, n: int = 2) -> None:
        self.newlines = max(self.newlines, n)
        self.space = False


@dataclass
class _Links:
    base: str
    domain: str
    urls: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def marker(self, href: str, text: str) -> str | None:
        try:
            link = urljoin(self.base, href)
            domain = get_domain(link)
        except ValueError:
            return None
        if not domain:
            return None
        link_id = self.ids.get(link)
        if link_id is None:
            link_id = self.ids[link] = str(len(self.urls))
            self.urls[link_id] = link
        if domain == self.domain:
            return f"【{link_id}†{text}】"
        return f"【{link_id}†{text}†{domain}】"


class _Renderer:
    def __init__(self, base_url: str) -> None:
        self.w = _Writer()
        self.links = _Links(base_url, get_domain(base_url) if base_url else "")
        self.images = 0
        self.lists: list[list[int]] = []  # per open list: [next number] (or [-1] for bullets)

    def walk(self, el: lxml.html.HtmlElement) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _DROP or not tag:
            pass
        elif tag == "a" and self._link(el):
            pass
        else:
            self._element(el, tag.lower())
        if el.tail:
            self.w.text(el.tail)

    def _children(self, el: lxml.html.HtmlElement) -> None:
        if el.text:
            self.w.text(el.text)
        for child in el:
            self.walk(child)

    def _element(self, el: lxml.html.HtmlElement, tag: str) -> None:  # noqa: C901 - a dispatch
        w = self.w
        if tag in _HEADINGS:
            w.block(2)
            w.raw("#" * _HEADINGS[tag] + " ")
            self._children(el)
            w.block(2)
        elif tag in ("ul", "ol", "menu"):
            w.block(2 if not self.lists else 1)
            self.lists.append([1 if tag == "ol" else -1])
            self._children(el)
            self.lists.pop()
            w.block(2 if not self.lists else 1)
        elif tag == "li":
            w.block(1)
            depth = max(len(self.lists), 1)
            counter = self.lists[-1] if self.lists else [-1]
            mark = "*" if counter[0] < 0 else f"{counter[0]}."
            if counter[0] > 0:
                counter[0] += 1
            w.raw("  " * depth + mark + " ")
            self._children(el)
            w.block(1)
        elif tag == "br":
            w.block(1)
        elif tag == "hr":
            w.block(2)
            w.raw("* * *")
            w.block(2)
        elif tag == "pre":
            self._pre(el)
        elif tag == "table":
            self._table(el)
        elif tag == "img":
            alt = (el.get("alt") or el.get("title") or "").strip()
            w.text(f" [Image {self.images}: {alt}] " if alt else f" [Image {self.images}] ")
            self.images += 1
        elif tag in ("sup", "sub") and len(el) == 0 and el.text and el.text.strip().isalnum():
            w.raw(("^{" if tag == "sup" else "_{") + el.text.strip() + "}")
        elif tag == "code":
            w.text(" " if el.text and el.text[:1].isspace() else "")
            w.raw("`")
            self._children(el)
            w.raw("`")
        elif tag == "blockquote":
            w.block(2)
            w.raw("> ")
            self._children(el)
            w.block(2)
        elif tag in _BLOCK:
            w.block(1 if tag in ("dt", "dd", "summary", "figcaption") else 2)
            self._children(el)
            w.block(1 if tag in ("dt", "dd", "summary", "figcaption") else 2)
        else:  # inline: span, b, i, em, strong, label, ...
            self._children(el)

    def _link(self, el: lxml.html.HtmlElement) -> bool:
        """Render ``<a href>`` as a marker; False leaves it to be rendered as plain content."""
        href = el.get("href")
        if href is None or href.startswith(("mailto:", "javascript:")):
            return False
        text = _WS.sub(" ", " ".join(el.itertext()).translate(_SPECIAL)).strip()
        if not text:
            return False  # an image link: its image placeholder is rendered instead
        text = text.replace("†", "‡")
        if href.startswith("#"):
            self.w.text(text)
            return True
        marker = self.links.marker(href.strip(), text)
        if marker is None:
            return False
        self.w.text(" " if el.text and el.text[:1].isspace() else "")
        self.w.raw(marker)
        return True

    def _pre(self, el: lxml.html.HtmlElement) -> None:
        code = "".join(el.itertext()).translate(_SPECIAL).strip("\n")
        self.w.block(2)
        self.w.raw("```\n" + code + "\n```")
        self.w.block(2)

    def _table(self, el: lxml.html.HtmlElement) -> None:
        self.w.block(2)
        for row in el.iter("tr"):
            cells = []
            for cell in row:
                if isinstance(cell.tag, str) and cell.tag.lower() in ("td", "th"):
                    sub = _Renderer(self.links.base)
                    sub.links, sub.images = self.links, self.images
                    sub._children(cell)
                    self.images = sub.images
                    cells.append(" ".join("".join(sub.w.out).split("\n")).strip())
            if cells:
                self.w.raw("| " + " | ".join(cells) + " |")
                self.w.block(1)
        self.w.block(2)


def _title(root: lxml.html.HtmlElement) -> str:
    node = root.find(".//title")
    return _WS.sub(" ", node.text_content()).strip() if node is not None else ""


def html_to_page(html: str | bytes, url: str, title: str | None = None) -> PageContents:
    """Convert an HTML document into a page whose links are numbered markers.

    ``title`` overrides the document's ``<title>``; without either the URL's domain is used.
    The text starts with a ``URL: ...`` line, as in the reference's display.
    """
    try:
        root = lxml.html.document_fromstring(html or "<html></html>")
    except (lxml.etree.ParserError, ValueError):
        root = lxml.html.document_fromstring("<html></html>")
    renderer = _Renderer(url)
    body = root.find("body")
    renderer.walk(body if body is not None else root)
    text = _BLANKS.sub("\n\n", "".join(renderer.w.out)).strip("\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    final_title = title or _title(root) or (get_domain(url) if url else "")
    return PageContents(
        url=url, title=final_title, text=f"\nURL: {url}\n{text}", urls=renderer.links.urls
    )


def text_to_page(text: str, url: str, title: str | None = None) -> PageContents:
    return PageContents(url=url, title=title or get_domain(url), text=f"\nURL: {url}\n{text}")


def pdf_to_page(data: bytes, url: str) -> PageContents:
    """Text of every PDF page, separated by blank lines. Raises ValueError on a broken PDF."""
    import pypdf  # imported here: most runs never see a PDF

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        parts = [(page.extract_text() or "").strip() for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except pypdf.errors.PyPdfError as exc:
        raise ValueError(f"unreadable PDF: {exc}") from exc
    text = "\n\n".join(p for p in parts if p)
    return text_to_page(text, url, str(meta_title) if meta_title else None)
