"""A page as the browser keeps it: display text with link markers, and the links behind them."""

from __future__ import annotations

import functools
import itertools
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

#: Width the trained browser wraps lines at.
WRAP_WIDTH = 80


@dataclass(frozen=True, slots=True)
class Extract:
    """A quotable extract (a find match); ``line_idx`` is where opening it positions the view."""

    url: str
    text: str
    title: str
    line_idx: int | None = None


@dataclass(frozen=True)
class PageContents:
    """One page: ``text`` holds ``【id†text†domain】`` markers whose targets are ``urls[id]``.

    ``snippets`` is set on generated pages (find results); ``find`` refuses such pages, as the
    reference does.
    """

    url: str
    title: str
    text: str
    urls: dict[str, str] = field(default_factory=dict)
    snippets: dict[str, Extract] | None = None

    @functools.cached_property
    def lines(self) -> list[str]:
        """The text wrapped at 80 columns, empty lines kept (cached: wrapping a big page costs)."""
        return wrap_lines(self.text)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "lines"}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageContents:
        snippets = data.get("snippets")
        return cls(
            url=data["url"],
            title=data["title"],
            text=data["text"],
            urls=dict(data.get("urls") or {}),
            snippets=None if snippets is None else {k: Extract(**v) for k, v in snippets.items()},
        )


def wrap_lines(text: str, width: int = WRAP_WIDTH) -> list[str]:
    """Split into lines and wrap each at ``width`` keeping whitespace, as the reference does."""
    return list(
        itertools.chain.from_iterable(
            textwrap.wrap(line, width=width, replace_whitespace=False, drop_whitespace=False)
            if len(line) > width or "\t" in line
            else [line]  # what textwrap returns for a short line, without its cost
            for line in text.split("\n")
        )
    )


def get_domain(url: str) -> str:
    """The host[:port] of ``url``; a scheme-less URL is read as http."""
    netloc = urlparse(url).netloc
    return netloc or urlparse("http://" + url).netloc


def maybe_truncate(text: str, num_chars: int = 1024) -> str:
    return text if len(text) <= num_chars else text[: num_chars - 3] + "..."
