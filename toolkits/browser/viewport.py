"""How many lines of a page fit in one view, measured in o200k tokens as gpt-oss was trained.

The trained browser shows about ``view_tokens`` tokens of numbered lines per view. A token's
width is the length of its text decoded on its own (a token that splits a UTF-8 character counts
as its replacement characters), so the line count we compute equals the reference's.

We tokenize a growing prefix rather than the reference's fixed 128-characters-per-token bound:
the tokens before the cut are the same, and a short prefix is usually enough, which keeps
``open`` fast on long pages.
"""

from __future__ import annotations

import base64
import functools
import itertools
from collections.abc import Sequence

from agent.harmony.vocab import SHIPPED_DIR, VOCAB_FILE, load_encoding

#: Tokens past the cut we want before trusting a prefix's tokenization (a word split at the
#: prefix boundary only changes the last few tokens).
_SAFETY_TOKENS = 64


@functools.cache
def _token_widths() -> tuple[int, ...]:
    """Character width of every ordinary token, read once from the shipped vocabulary."""
    widths: dict[int, int] = {}
    with open(SHIPPED_DIR / VOCAB_FILE, "rb") as f:
        for line in f:
            b64, _, rank = line.partition(b" ")
            widths[int(rank)] = len(base64.b64decode(b64).decode("utf-8", "replace"))
    size = max(widths) + 1
    return tuple(widths.get(i, 1) for i in range(size))


def numbered(lines: Sequence[str], offset: int = 0) -> str:
    """``L{n}: line`` for each line, joined by newlines (the trained display)."""
    return "\n".join(f"L{i + offset}: {line}" for i, line in enumerate(lines))


def _offset_of_token(text: str, index: int) -> int | None:
    """Character offset where token ``index`` of ``text`` starts, or None if text is shorter."""
    encoding = load_encoding()
    widths = _token_widths()
    size = max(4 * (index + _SAFETY_TOKENS), 4096)
    while True:
        prefix = text[:size]
        tokens = encoding.encode(prefix, allowed_special=set())
        whole = size >= len(text)
        if len(tokens) > index + (0 if whole else _SAFETY_TOKENS):
            return sum(widths[t] if t < len(widths) else 1 for t in itertools.islice(tokens, index))
        if whole:
            return None
        size *= 2


def end_line(lines: Sequence[str], loc: int, num_lines: int, view_tokens: int) -> int:
    """One past the last line shown when viewing from ``loc`` (num_lines <= 0: fit the view)."""
    total = len(lines)
    if num_lines > 0:
        return min(loc + num_lines, total)
    text = numbered(lines[loc:], offset=loc)
    if len(text) <= view_tokens:  # at least one character per token: everything fits
        return total
    cut = _offset_of_token(text, view_tokens)
    if cut is None:
        return total
    shown = text[:cut].count("\n") + 1  # a line cut in the middle is shown whole
    return min(loc + shown, total)


def warm() -> None:
    """Load the encoding and token widths now (about a second) instead of on the first view."""
    load_encoding()
    _token_widths()
