"""Find where each hunk of an Update File goes, with the reference's matching rules.

A hunk's old lines (context and removed lines) are looked for at or after the cursor (the end of
the previous hunk, or the line after its ``@@`` anchors), first exactly, then ignoring trailing
whitespace, then ignoring surrounding whitespace; the first level that finds them decides.
``*** End of File`` tries the end of the file first. Unlike the reference, which takes the first
match, a hunk that matches at two places of the searched region is an error unless an ``@@``
anchor placed it (then the first match after the anchor wins): silently editing the wrong copy of
a repeated block is worse than asking the model for one more line of context.

Cost: an index maps each line the patch mentions to its positions in the file (one C-speed pass
per level, built only when a level is needed), and a hunk is verified only where its rarest line
occurs. A patch of h hunks on an n-line file costs O(n + size of patch), with fuzzy levels too.
"""

from __future__ import annotations

import enum
import itertools
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from toolkits.apply_patch import diagnostics
from toolkits.apply_patch.errors import HunkMismatch
from toolkits.apply_patch.model import Hunk


class Level(enum.IntEnum):
    EXACT = 0
    RSTRIP = 1  # ignoring trailing whitespace
    STRIP = 2  # ignoring surrounding whitespace


_NORMALIZE: dict[Level, Callable[[str], str]] = {Level.RSTRIP: str.rstrip, Level.STRIP: str.strip}


class LineIndex:
    """The positions of the lines a patch mentions, per matching level, built on first use."""

    def __init__(self, lines: list[str], wanted: set[str]) -> None:
        self.lines = lines
        self._wanted = wanted
        self._views: dict[Level, list[str]] = {Level.EXACT: lines}
        self._positions: dict[Level, dict[str, list[int]]] = {}

    def view(self, level: Level) -> list[str]:
        """The file's lines as seen at ``level``."""
        if level not in self._views:
            self._views[level] = list(map(_NORMALIZE[level], self.lines))
        return self._views[level]

    def normalize(self, lines: Sequence[str], level: Level) -> list[str]:
        return list(lines) if level is Level.EXACT else list(map(_NORMALIZE[level], lines))

    def positions(self, level: Level) -> dict[str, list[int]]:
        if level not in self._positions:
            wanted = set(self.normalize(list(self._wanted), level))
            view = self.view(level)
            index: dict[str, list[int]] = {}
            # compress() and map() walk the file in C; only lines the patch mentions reach Python.
            for i in itertools.compress(range(len(view)), map(wanted.__contains__, view)):
                index.setdefault(view[i], []).append(i)
            self._positions[level] = index
        return self._positions[level]

    def find(self, pattern: Sequence[str], level: Level, start: int, limit: int = 2) -> list[int]:
        """Up to ``limit`` positions >= ``start`` where ``pattern`` (non-empty) matches."""
        # Called once per hunk and level: kept free of helper calls on the exact path.
        positions = self._positions.get(level)
        if positions is None:
            positions = self.positions(level)
        if level is Level.EXACT:
            view, pat = self.lines, list(pattern)
        else:
            view, pat = self.view(level), list(map(_NORMALIZE[level], pattern))
        rarest_k, rarest = 0, None
        for k, line in enumerate(pat):
            occurrences = positions.get(line)
            if not occurrences:
                return []
            if rarest is None or len(occurrences) < len(rarest):
                rarest_k, rarest = k, occurrences
                if len(occurrences) == 1:
                    break
        assert rarest is not None
        found: list[int] = []
        m, n = len(pat), len(view)
        for p in itertools.islice(rarest, bisect_left(rarest, start + rarest_k), None):
            s = p - rarest_k
            if s + m > n:
                break
            if view[s : s + m] == pat:
                found.append(s)
                if len(found) >= limit:
                    break
        return found

    def matches_at(self, pattern: Sequence[str], level: Level, start: int) -> bool:
        return start >= 0 and self.view(level)[start : start + len(pattern)] == self.normalize(
            pattern, level
        )


@dataclass(slots=True)  # not frozen: one per hunk, and frozen __init__ is slow
class Placement:
    """Where a hunk goes: its old lines are ``lines[start:end]``."""

    start: int
    end: int
    level: Level
    hunk: Hunk
    old_used: int  # len(hunk.old) less trailing blank context lines dropped to find a match


def _trailing_blank_context(hunk: Hunk) -> int:
    """How many trailing old lines are blank context lines that ``new`` also ends with."""
    count, k, j = 0, len(hunk.old) - 1, len(hunk.new) - 1
    while k >= 0 and j >= 0 and not hunk.old[k].strip() and hunk.new_from_old[j] == k:
        count, k, j = count + 1, k - 1, j - 1
    return count


def _seek(
    index: LineIndex, pattern: Sequence[str], cursor: int, *, eof: bool, anchored: bool
) -> tuple[int, Level] | list[int]:
    """A unique (or, when anchored, first) match, or the positions of an ambiguous one ([] = none)."""
    n = len(index.lines)
    if eof and n - len(pattern) >= cursor:
        for level in Level:
            if index.matches_at(pattern, level, n - len(pattern)):
                return n - len(pattern), level
    for level in Level:
        found = index.find(pattern, level, cursor, limit=1 if anchored else 3)
        if len(found) == 1 or (anchored and found):
            return found[0], level
        if found:
            return found
    return []


def _anchor_cursor(index: LineIndex, hunk: Hunk, cursor: int, path: str, number: int) -> int:
    for anchor in hunk.anchors:
        for level in Level:
            found = index.find([anchor], level, cursor, limit=1)
            if found:
                cursor = found[0] + 1
                break
        else:
            where = _where(path, number, hunk)
            raise HunkMismatch(
                diagnostics.anchor_missing(index.lines, anchor, cursor, where),
                path=path, patch_line=hunk.line,
            )
    return cursor


def place_hunks(lines: list[str], hunks: Sequence[Hunk], path: str) -> list[Placement]:
    """Place every hunk of one file, in order.

    Raises:
        HunkMismatch: a hunk (or an anchor) matches nowhere after the previous hunk, or a hunk
            matches several places; the message shows the closest lines of the file.
    """
    wanted = {line for hunk in hunks for line in (*hunk.old, *hunk.anchors)}
    index = LineIndex(lines, wanted)
    placements: list[Placement] = []
    cursor = 0
    for number, hunk in enumerate(hunks, start=1):
        start = _anchor_cursor(index, hunk, cursor, path, number) if hunk.anchors else cursor
        if not hunk.old:
            # Nothing to match: after the anchor, else at the end of the file (as Codex does).
            at = start if hunk.anchors else len(lines)
            placements.append(Placement(at, at, Level.EXACT, hunk, 0))
            cursor = at if hunk.anchors else cursor
            continue
        found = _place_one(index, hunk, start)
        if isinstance(found, list):
            where = _where(path, number, hunk)
            message = (
                diagnostics.ambiguous(lines, hunk, found, where)
                if found
                else diagnostics.mismatch(index, hunk, start, where, path)
            )
            raise HunkMismatch(message, path=path, patch_line=hunk.line)
        at, used, level = found
        placements.append(Placement(at, at + used, level, hunk, used))
        cursor = at + used
    return placements


def _where(path: str, number: int, hunk: Hunk) -> str:
    return f"hunk {number} of '{path}' (patch line {hunk.line})"


def _place_one(index: LineIndex, hunk: Hunk, start: int) -> tuple[int, int, Level] | list[int]:
    """(position, old lines used, level), or the ambiguous positions ([] = no match)."""
    anchored = bool(hunk.anchors)
    result = _seek(index, hunk.old, start, eof=hunk.end_of_file, anchored=anchored)
    if isinstance(result, tuple):
        return result[0], len(hunk.old), result[1]
    # Models often end a hunk with blank context lines the file does not have there.
    drop = _trailing_blank_context(hunk)
    if 0 < drop < len(hunk.old):
        used = len(hunk.old) - drop
        retry = _seek(index, hunk.old[:used], start, eof=hunk.end_of_file, anchored=anchored)
        if isinstance(retry, tuple):
            return retry[0], used, retry[1]
    return result


def _reindent(file_old: Sequence[str], patch_old: Sequence[str]) -> Callable[[str], str]:
    """After a match that ignored indentation, shift added lines by the same base indentation.

    Only a uniform shift is applied (every differing non-blank line is ``file_base + rest`` where
    the patch had ``patch_base + rest``); anything else keeps the added lines as written.
    """
    pairs = [(f, p) for f, p in zip(file_old, patch_old, strict=True) if f != p and p.strip()]
    if not pairs:
        return lambda line: line
    f0, p0 = pairs[0]
    file_base, patch_base = f0[: len(f0) - len(f0.lstrip())], p0[: len(p0) - len(p0.lstrip())]
    for f, p in pairs:
        if not p.startswith(patch_base) or f.rstrip() != (file_base + p[len(patch_base) :]).rstrip():
            return lambda line: line

    def shift(line: str) -> str:
        if line.strip() and line.startswith(patch_base):
            return file_base + line[len(patch_base) :]
        return line

    return shift


def apply_placements(lines: list[str], placements: Sequence[Placement]) -> list[str]:
    """The file's new lines; context lines are copied from the file, not from the patch."""
    out: list[str] = []
    prev = 0
    for pl in sorted(placements, key=lambda p: p.start):  # stable: insertions keep their order
        out.extend(lines[prev : pl.start])
        hunk = pl.hunk
        shift = (
            _reindent(lines[pl.start : pl.end], hunk.old[: pl.old_used])
            if pl.level is Level.STRIP
            else None
        )
        for text, src in zip(hunk.new, hunk.new_from_old, strict=True):
            if src >= pl.old_used:
                continue  # a trailing blank context line that was dropped to find the match
            if src >= 0:
                out.append(lines[pl.start + src])
            else:
                out.append(shift(text) if shift else text)
        prev = max(prev, pl.end)
    out.extend(lines[prev:])
    return out
