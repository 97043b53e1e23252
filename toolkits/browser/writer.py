"""The text sink of the HTML converter: collapses whitespace and owes block breaks lazily."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Characters that would read as trained link markup (or invisible) are replaced in page text.
SPECIAL = str.maketrans({"【": "〖", "】": "〗", "◼": "◾", "\u200b": None})


def collapse(text: str) -> str:
    """Runs of whitespace as one space, trimmed (``str.split`` is faster than a regex)."""
    return " ".join(text.split())


@dataclass(slots=True)
class Writer:
    """Collects output; a block break or a space is written only before the next text."""

    out: list[str] = field(default_factory=list)
    newlines: int = 2  # newlines owed before the next text (2 at start: nothing is written)
    space: bool = False
    started: bool = False

    def text(self, s: str) -> None:
        """Inline text: whitespace runs become one space, markup-like brackets are replaced."""
        if not s:
            return
        if not s.isascii():  # O(1) check; ASCII text has nothing to replace
            s = s.translate(SPECIAL)
        words = s.split()
        if not words:
            if s:
                self.space = True
            return
        if s[0].isspace():
            self.space = True
        self._flush()
        self.out.append(" ".join(words))
        self.space = s[-1].isspace()

    def raw(self, s: str) -> None:
        """Text written as is (markers, list bullets, fenced code)."""
        self._flush()
        self.out.append(s)

    def block(self, n: int = 2) -> None:
        """End the current block: ``n`` newlines before whatever text comes next."""
        if n > self.newlines:
            self.newlines = n
        self.space = False

    def _flush(self) -> None:
        if self.newlines:
            if self.started:
                self.out.append("\n" * self.newlines)
            self.newlines = 0
        elif self.space:
            self.out.append(" ")
        self.space = False
        self.started = True
