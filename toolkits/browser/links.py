"""Numbered link markers ``【id†text†domain】`` and the URLs behind them, for one page.

Resolving a link is the converter's hottest step on link-heavy pages (``urljoin`` costs tens of
microseconds), so the common shapes (absolute http(s), scheme-relative, root-relative) are
resolved by string operations, with ``urljoin`` only for the rest, and each href once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from toolkits.browser.page import get_domain

_ORIGIN = re.compile(r"^([a-z][a-z0-9+.\-]*:)//([^/?#]*)", re.I)
#: hrefs the fast paths must leave to urljoin: dot segments, or characters it strips/escapes.
_UNUSUAL = re.compile(r"/\.\.?(?:[/?#]|$)|[\s\\]")


@dataclass(slots=True)
class Links:
    base: str
    domain: str
    urls: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    _resolved: dict[str, tuple[str, str]] = field(default_factory=dict)

    def marker(self, href: str, text: str) -> str | None:
        """The marker for a link to ``href`` labelled ``text``; None for an unusable href."""
        resolved = self._resolved.get(href)
        if resolved is None:
            try:
                resolved = self._resolve(href)
            except ValueError:
                return None
            self._resolved[href] = resolved
        link, domain = resolved
        if not domain:
            return None
        # As the trained browser does: arXiv links open the paper's HTML rendering on ar5iv,
        # while the marker keeps showing arxiv.org.
        link = link.replace("arxiv.org", "ar5iv.org")
        link_id = self.ids.get(link)
        if link_id is None:
            link_id = self.ids[link] = str(len(self.urls))
            self.urls[link_id] = link
        if domain == self.domain:
            return f"【{link_id}†{text}】"
        return f"【{link_id}†{text}†{domain}】"

    def _resolve(self, href: str) -> tuple[str, str]:
        """(absolute URL, host[:port]) of ``href`` against the page's URL."""
        if not _UNUSUAL.search(href):
            if href.startswith(("http://", "https://")):
                match = _ORIGIN.match(href)
                if match and match.group(2):
                    return href, match.group(2)
            elif href.startswith("//"):
                base = _ORIGIN.match(self.base)
                match = _ORIGIN.match(base.group(1) + href) if base else None
                if match and match.group(2):
                    return match.string, match.group(2)
            elif href.startswith("/"):
                base = _ORIGIN.match(self.base)
                if base:
                    return base.group(0) + href, base.group(2)
        link = urljoin(self.base, href)
        return link, get_domain(link)
