"""Write V4A patches: two versions of a file (or of a set of files) in, patch text out.

Each hunk gets ``context`` lines around its changes and then grows, one line at a time, until
its old lines match exactly one place after the previous hunk, so the patch applies with our
strict matcher (no ambiguity, no fuzz). A hunk that reaches the end of the file is marked
``*** End of File``.

V4A cannot express a change of line endings, of the final newline or of a BOM: an updated file
keeps them. Added files are written with LF and a final newline.

Example::

    text = make_patch("a\\nb\\nc\\n", "a\\nB\\nc\\n", "notes.txt")
    # *** Begin Patch / *** Update File: notes.txt / @@ / " a" / "-b" / "+B" / " c" / ...
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.errors import UserError
from toolkits.apply_patch.matcher import Level, LineIndex
from toolkits.apply_patch.text import split_text

_Change = tuple[int, int, int, int]  # old[i1:i2] becomes new[j1:j2]


@dataclass(slots=True)
class _Window:
    a0: int
    a1: int
    changes: list[_Change] = field(default_factory=list)


def _windows(changes: list[_Change], n: int, context: int) -> list[_Window]:
    windows: list[_Window] = []
    for ch in changes:
        a0, a1 = max(0, ch[0] - context), min(n, ch[1] + context)
        if windows and a0 <= windows[-1].a1:
            windows[-1].a1 = max(windows[-1].a1, a1)
            windows[-1].changes.append(ch)
        else:
            windows.append(_Window(a0, a1, [ch]))
    return windows


def _unique(index: LineIndex, w: _Window, cursor: int) -> bool:
    n = len(index.lines)
    if w.a0 == w.a1:
        return w.a0 == n  # an empty hunk is appended at the end of the file
    if w.a1 == n:
        return True  # *** End of File pins it
    return len(index.find(index.lines[w.a0 : w.a1], Level.EXACT, cursor, limit=2)) == 1


def _make_unique(index: LineIndex, windows: list[_Window]) -> None:
    n, cursor, k = len(index.lines), 0, 0
    while k < len(windows):
        w = windows[k]
        while not _unique(index, w, cursor):
            if w.a0 > cursor:
                w.a0 -= 1
            elif w.a1 < n:
                w.a1 += 1
            else:  # pragma: no cover - the whole rest of the file always matches once
                break
            if k + 1 < len(windows) and w.a1 >= windows[k + 1].a0:
                following = windows.pop(k + 1)
                w.a1 = max(w.a1, following.a1)
                w.changes += following.changes
        cursor = w.a1
        k += 1


def _hunk_lines(a: list[str], b: list[str], w: _Window) -> list[str]:
    out = ["@@"]
    pos = w.a0
    for i1, i2, j1, j2 in w.changes:
        out += [" " + line for line in a[pos:i1]]
        out += ["-" + line for line in a[i1:i2]]
        out += ["+" + line for line in b[j1:j2]]
        pos = i2
    out += [" " + line for line in a[pos : w.a1]]
    if w.a1 == len(a) and w.a0 < w.a1:
        out.append("*** End of File")
    return out


def update_section(old: str, new: str, path: str, *, context: int = 3) -> str:
    """The ``*** Update File`` section turning ``old`` into ``new`` ("" when they are equal).

    Raises:
        UserError: the versions differ in line endings, final newline or BOM (not expressible).
    """
    a, la = split_text(old)
    b, lb = split_text(new)
    if old == new:
        return ""
    # A text without a line break shows no line ending style: any suits it.
    newline_ok = la.newline == lb.newline or "\n" not in old or "\n" not in new
    if b and (la.bom, la.final_newline) != (lb.bom, lb.final_newline) or not newline_ok:
        raise UserError(
            f"{path}: a V4A patch keeps line endings, the final newline and a BOM as they are; "
            "the two versions differ in those"
        )
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    changes = [
        (i1, i2, j1, j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    ]
    if not changes:
        return ""
    index = LineIndex(a, set(a))
    windows = _windows(changes, len(a), max(context, 0))
    _make_unique(index, windows)
    lines = [f"*** Update File: {path}"]
    for w in windows:
        lines += _hunk_lines(a, b, w)
    return "\n".join(lines) + "\n"


def make_patch(old: str, new: str, path: str, *, context: int = 3) -> str:
    """A whole patch updating one file from ``old`` to ``new`` (empty envelope when equal)."""
    return "*** Begin Patch\n" + update_section(old, new, path, context=context) + "*** End Patch\n"


def diff_files(
    before: Mapping[str, str], after: Mapping[str, str], *, context: int = 3
) -> str:
    """A patch turning the files ``before`` into ``after`` (path -> text): adds, deletes, updates."""
    sections: list[str] = []
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            sections.append(f"*** Delete File: {path}\n")
        elif path not in before:
            body = "".join("+" + line + "\n" for line in split_text(after[path])[0])
            sections.append(f"*** Add File: {path}\n{body}")
        else:
            sections.append(update_section(before[path], after[path], path, context=context))
    return "*** Begin Patch\n" + "".join(sections) + "*** End Patch\n"
