"""Error messages for hunks that do not fit: what was looked for, where, and the closest lines.

The model cannot see the file while it reads the error, so each message quotes the lines it sent
and the file's lines it most likely meant (with line numbers), and says how to fix the patch.
Only the error path runs this code; it may take a pass over the file.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from toolkits.apply_patch.model import Hunk

if TYPE_CHECKING:
    from toolkits.apply_patch.matcher import LineIndex

_SHOW = 12  # lines of a hunk or of the file quoted at most
_VOTES_PER_LINE = 200  # a line repeated more often than this is no clue where the hunk belongs


def _after(start: int) -> str:
    return "from the start of the file" if start == 0 else f"after line {start}"


def _quote_hunk(hunk: Hunk, used: int | None = None) -> list[str]:
    context = set(hunk.new_from_old)
    old = hunk.old[:used] if used is not None else hunk.old
    shown = [("  " if k in context else "- ") + line for k, line in enumerate(old)]
    if len(shown) > _SHOW:
        shown = [*shown[:_SHOW], f"  ... ({len(shown) - _SHOW} more lines)"]
    return ["    " + line for line in shown]


def _quote_file(lines: Sequence[str], start: int, count: int, pattern: Sequence[str]) -> list[str]:
    out = []
    for k in range(max(0, start), min(len(lines), start + min(count, _SHOW))):
        same = k - start < len(pattern) and lines[k].strip() == pattern[k - start].strip()
        out.append(f"  {' ' if same else '!'} {k + 1:>6} | {lines[k]}")
    return out


def _closest_start(index: LineIndex, pattern: Sequence[str], start: int) -> tuple[int, int]:
    """The window start where most pattern lines agree (ignoring whitespace), and how many do."""
    from toolkits.apply_patch.matcher import Level

    positions = index.positions(Level.STRIP)
    votes: Counter[int] = Counter()
    for k, line in enumerate(pattern):
        key = line.strip()
        if key:
            for p in positions.get(key, ())[:_VOTES_PER_LINE]:
                votes[p - k] += 1
    if votes:
        best = max(votes.values())
        ties = [s for s, v in votes.items() if v == best]
        return min(ties, key=lambda s: (s < start, abs(s - start))), best
    probe = next((line.strip() for line in pattern if line.strip()), "")
    view = index.view(Level.STRIP)
    candidates = list(dict.fromkeys(view[start:] or view))[:50_000]
    close = difflib.get_close_matches(probe, candidates, n=1, cutoff=0.5) if probe else []
    if not close:
        return -1, 0
    k = next(i for i, line in enumerate(pattern) if line.strip())
    where = view.index(close[0], start) if close[0] in view[start:] else view.index(close[0])
    return where - k, 0


def mismatch(index: LineIndex, hunk: Hunk, start: int, where: str, path: str) -> str:
    from toolkits.apply_patch.matcher import Level

    pattern = hunk.old
    for level in Level:
        earlier = index.find(pattern, level, 0, limit=1)
        if earlier and earlier[0] < start:
            return (
                f"{where}: its lines are at line {earlier[0] + 1} of '{path}', before the place "
                f"the search started (line {start + 1}, after the previous hunk or its '@@' "
                "anchor). Hunks of a file must come in file order and must not overlap."
            )
    head = [
        f"{where} does not match '{path}': these lines were not found {_after(start)}, "
        "exactly or ignoring whitespace:",
        *_quote_hunk(hunk),
    ]
    at, agree = _closest_start(index, pattern, start)
    if at < 0 and agree == 0 and not any(line.strip() for line in pattern):
        at = start
    if at >= 0 or agree:
        span = f"lines {max(at, 0) + 1}-{min(len(index.lines), at + len(pattern))}"
        tally = f" ({agree} of {len(pattern)} lines agree, '!' marks the others)" if agree else ""
        head += [
            f"The closest lines of '{path}' are {span}{tally}:",
            *_quote_file(index.lines, at, len(pattern), pattern),
        ]
    head.append(
        "Copy the context (' ') and removed ('-') lines exactly from the current file; "
        "read it again if unsure."
    )
    return "\n".join(head)


def _enclosing(lines: Sequence[str], at: int) -> str | None:
    """The nearest line above ``at`` indented less than the hunk: a good ``@@`` anchor."""
    first = next((lines[k] for k in range(at, min(len(lines), at + 50)) if lines[k].strip()), "")
    indent = len(first) - len(first.lstrip())
    for k in range(at - 1, max(-1, at - 500), -1):
        line = lines[k]
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            return line.strip()
    return None


def ambiguous(lines: Sequence[str], hunk: Hunk, positions: Sequence[int], where: str) -> str:
    shown = ", ".join(str(p + 1) for p in positions[:2]) + (
        " and more" if len(positions) > 2 else ""
    )
    out = [
        f"{where} matches several places of the file (at lines {shown}), so it is not clear "
        "which one to change:",
        *_quote_hunk(hunk),
    ]
    for p in positions[:2]:
        first, last = max(0, p - 2), min(len(lines), p + min(len(hunk.old), _SHOW) + 2)
        out.append(f"At line {p + 1} (with two lines around it):")
        out += [f"    {k + 1:>6} | {lines[k]}" for k in range(first, last)]
    out += [
        "Add context lines that differ between those places, or an '@@ <line>' header naming "
        "the enclosing class or function, so the hunk matches exactly one place.",
    ]
    anchors = [(p, _enclosing(lines, p)) for p in positions[:2]]
    hints = [f"'@@ {a}' (for line {p + 1})" for p, a in anchors if a]
    if len({a for _, a in anchors if a}) > 1:
        out.append("Possible headers: " + ", ".join(hints) + ".")
    return "\n".join(out)


def anchor_missing(lines: Sequence[str], anchor: str, cursor: int, where: str) -> str:
    out = [f"the '@@ {anchor}' header of {where} was not found in the file {_after(cursor)}."]
    stripped = [line.strip() for line in lines]
    if anchor.strip() in stripped[:cursor]:
        out.append(
            f"It is at line {stripped.index(anchor.strip()) + 1}, before the previous hunk: "
            "hunks of a file must come in file order."
        )
    else:
        pool = list(dict.fromkeys(s for s in stripped[cursor:] if s))[:50_000]
        close = difflib.get_close_matches(anchor.strip(), pool, n=3, cutoff=0.5)
        if close:
            out.append("Closest lines: " + "; ".join(
                f"line {stripped.index(c, cursor) + 1}: {c!r}" for c in close
            ))
    out.append("An '@@' header must repeat a line of the file exactly (a def, class or heading).")
    return "\n".join(out)
