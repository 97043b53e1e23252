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


def _numbered_prefix(lines: Sequence[str], loc: int, size: int) -> tuple[str, bool]:
    """The numbered lines from ``loc`` until the text is longer than ``size`` characters, and
    whether it reached the last line. Numbering all of a long page would cost more than the
    view itself."""
    parts: list[str] = []
    length = -1
    end = loc
    total = len(lines)
    while end < total and length <= size:
        part = f"L{end}: {lines[end]}"
        parts.append(part)
        length += len(part) + 1
        end += 1
    return "\n".join(parts), end == total


def _offset_of_token(lines: Sequence[str], loc: int, index: int) -> tuple[int, str] | None:
    """Character offset where token ``index`` of the numbered text from ``loc`` starts, with
    that text; None when the whole text has no more than ``index`` tokens."""
    encoding = load_encoding()
    widths = _token_widths()
    size = max(4 * (index + _SAFETY_TOKENS), 4096)
    while True:
        text, reached_end = _numbered_prefix(lines, loc, size)
        whole = reached_end and size >= len(text)
        # Page text is never special tokens, and with disallowed_special=() the encoder skips
        # building a set of every reserved token and a regex of them (~20 ms) on each call,
        # and cannot raise on a page that quotes one (the reference passes the same).
        tokens = encoding.encode(text[:size], allowed_special=set(), disallowed_special=())
        if len(tokens) > index + (0 if whole else _SAFETY_TOKENS):
            offset = sum(widths[t] if t < len(widths) else 1 for t in itertools.islice(tokens, index))
            return offset, text
        if whole:
            return None
        size *= 2


def end_line(lines: Sequence[str], loc: int, num_lines: int, view_tokens: int) -> int:
    """One past the last line shown when viewing from ``loc`` (num_lines <= 0: fit the view)."""
    total = len(lines)
    if num_lines > 0:
        return min(loc + num_lines, total)
    head, reached_end = _numbered_prefix(lines, loc, view_tokens)
    if reached_end and len(head) <= view_tokens:  # at least one character per token: all fits
        return total
    found = _offset_of_token(lines, loc, view_tokens)
    if found is None:
        return total
    cut, text = found
    shown = text[:cut].count("\n") + 1  # a line cut in the middle is shown whole
    return min(loc + shown, total)


def warm() -> None:
    """Load the encoding and token widths now (about a second) instead of on the first view."""
    load_encoding()
    _token_widths()
