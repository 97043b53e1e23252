"""Parse V4A patch text (``*** Begin Patch`` ... ``*** End Patch``) into a :class:`Patch`.

The grammar the model was trained on::

    Patch      := "*** Begin Patch" NL { FileOp } "*** End Patch" NL?
    FileOp     := AddFile | DeleteFile | UpdateFile
    AddFile    := "*** Add File: " path NL { "+" line NL }
    DeleteFile := "*** Delete File: " path NL
    UpdateFile := "*** Update File: " path NL [ "*** Move to: " path NL ] { Hunk }
    Hunk       := { "@@" [ " " anchor ] NL } { (" " | "-" | "+") line NL } [ "*** End of File" NL ]

Leniencies the model needs (shared with the reference parsers): whitespace around the envelope
and file headers, a heredoc wrapper (``<<'EOF'`` ... ``EOF``), a CRLF patch, an empty hunk line
read as an empty context line, the first hunk of a file without ``@@``, and a unified-diff range
(``@@ -3,7 +3,8 @@``) read as no anchor. Everything else fails with the patch line and what was
expected there.
"""

from __future__ import annotations

import posixpath
import re

from toolkits.apply_patch.errors import PatchSyntaxError
from toolkits.apply_patch.model import AddFile, DeleteFile, FileOp, Hunk, Patch, UpdateFile

BEGIN = "*** Begin Patch"
END = "*** End Patch"
ADD = "*** Add File:"
DELETE = "*** Delete File:"
UPDATE = "*** Update File:"
MOVE = "*** Move to:"
EOF_MARK = "*** End of File"
_HEADERS = (ADD, DELETE, UPDATE)
_UNIFIED_RANGE = re.compile(r"^-\d+(,\d+)? \+\d+(,\d+)? @@")
_HEREDOC_OPEN = re.compile(r"^(apply_patch\s+)?<<\s*['\"]?(\w+)['\"]?\s*$")
_EXPECT_HEADER = (
    "expected a file header ('*** Add File: <path>', '*** Update File: <path>' or "
    "'*** Delete File: <path>') or '*** End Patch'"
)


def _shown(line: str) -> str:
    return repr(line if len(line) <= 120 else line[:117] + "...")


def _lines_of(text: str) -> tuple[list[str], int]:
    """The patch's lines between the envelope candidates, and the 1-based number of the first."""
    if "\r\n" in text and text.count("\r\n") == text.count("\n"):
        text = text.replace("\r\n", "\n")  # a CRLF patch; lone CRs stay part of their lines
    lines = text.split("\n")
    first, last = 0, len(lines)
    while first < last and not lines[first].strip():
        first += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    if first == last:
        return [], 1
    if last - first >= 2:
        opened = _HEREDOC_OPEN.match(lines[first].strip())
        if opened and lines[last - 1].strip() == opened.group(2):
            first, last = first + 1, last - 1
    return lines[first:last], first + 1


class _Parser:
    def __init__(self, lines: list[str], first_line: int) -> None:
        self.lines = lines
        self.base = first_line  # patch line number of lines[0]
        self.i = 0
        self.seen: dict[str, int] = {}

    def error(self, message: str, index: int | None = None) -> PatchSyntaxError:
        return PatchSyntaxError(message, line=self.base + (self.i if index is None else index))

    def at(self) -> str | None:
        return self.lines[self.i] if self.i < len(self.lines) else None

    def parse(self) -> Patch:
        if not self.lines or self.lines[0].strip() != BEGIN:
            got = _shown(self.lines[0]) if self.lines else "an empty patch"
            raise self.error(f"the first line of a patch must be '{BEGIN}', got {got}")
        self.i = 1
        ops: list[FileOp] = []
        while True:
            line = self.at()
            if line is None:
                raise self.error(f"the patch ended without '{END}' (the last line must be it)")
            stripped = line.strip()
            if stripped == END:
                break
            if not stripped:
                self.i += 1
                continue
            if stripped.startswith(ADD):
                ops.append(self.add_file(self.path_after(ADD)))
            elif stripped.startswith(DELETE):
                ops.append(DeleteFile(self.path_after(DELETE), line=self.base + self.i - 1))
            elif stripped.startswith(UPDATE):
                ops.append(self.update_file(self.path_after(UPDATE)))
            else:
                raise self.error(f"{_EXPECT_HEADER}, got {_shown(line)}")
        if self.i != len(self.lines) - 1:
            raise self.error(f"unexpected text after '{END}'", self.i + 1)
        return Patch(tuple(ops))

    def path_after(self, marker: str) -> str:
        """Read the path of the header at the cursor, check it is new to the patch, advance."""
        raw = self.lines[self.i].strip()[len(marker):].strip()
        if not raw:
            raise self.error(f"'{marker}' needs a path after it")
        path = posixpath.normpath(raw)
        if path in self.seen:
            raise self.error(
                f"'{raw}' already appears at line {self.seen[path]}; "
                "put every change of one file in a single section"
            )
        self.seen[path] = self.base + self.i
        self.i += 1
        return raw

    def is_header(self, line: str, *, in_hunk: bool = False) -> bool:
        """A file header or the end. In a hunk only a marker at column 0 counts (a context line
        may quote one), except the patch's own last line."""
        stripped = line.strip()
        if not (stripped == END or stripped.startswith(_HEADERS)):
            return False
        return not in_hunk or line.startswith("*") or self.i == len(self.lines) - 1

    def add_file(self, path: str) -> AddFile:
        start = self.base + self.i - 1
        content: list[str] = []
        blanks = 0  # empty lines are kept only when more '+' lines follow them
        while (line := self.at()) is not None and not self.is_header(line):
            if line.startswith("+"):
                content += [""] * blanks + [line[1:]]
                blanks = 0
            elif not line.strip():
                blanks += 1
            else:
                raise self.error(
                    f"every line of '*** Add File: {path}' must start with '+' "
                    f"(a lone '+' for an empty line), got {_shown(line)}"
                )
            self.i += 1
        return AddFile(path, tuple(content), line=start)

    def update_file(self, path: str) -> UpdateFile:
        start = self.base + self.i - 1
        move_to: str | None = None
        line = self.at()
        if line is not None and line.strip().startswith(MOVE):
            move_to = self.path_after(MOVE)
        hunks: list[Hunk] = []
        while (line := self.at()) is not None and not self.is_header(line, in_hunk=True):
            if not line.strip() and not hunks and not line.startswith(" "):
                self.i += 1  # a blank line between the header and the first hunk
                continue
            hunks.append(self.hunk(path, first=not hunks))
        if not hunks and move_to is None:
            raise PatchSyntaxError(
                f"'*** Update File: {path}' has no hunks; add '@@' sections with ' ', '-' "
                "and '+' lines (or use '*** Move to:' to only rename)",
                line=start,
            )
        return UpdateFile(path, move_to, tuple(hunks), line=start)

    def hunk(self, path: str, *, first: bool) -> Hunk:
        start = self.i
        anchors: list[str] = []
        while (line := self.at()) is not None and line.startswith("@@"):
            anchor = line[2:].strip()
            if anchor and not _UNIFIED_RANGE.match(anchor):
                anchors.append(anchor)
            self.i += 1
        if self.i == start and not first:
            raise self.error(
                f"expected '@@' to start the next hunk of '{path}', or a file header, "
                f"got {_shown(self.lines[self.i])}"
            )
        old, new, new_from_old, end_of_file = self.hunk_body(path)
        if not old and not new:
            raise self.error(f"this hunk of '{path}' has no lines", start)
        return Hunk(
            anchors=tuple(anchors),
            old=tuple(old),
            new=tuple(new),
            new_from_old=tuple(new_from_old),
            end_of_file=end_of_file,
            line=self.base + start,
        )

    def hunk_body(self, path: str) -> tuple[list[str], list[str], list[int], bool]:
        """The ' ', '-', '+' lines of a hunk up to the next marker: old, new, their link, EOF."""
        old: list[str] = []
        new: list[str] = []
        new_from_old: list[int] = []
        end_of_file = False
        lines, i, last = self.lines, self.i, len(self.lines) - 1
        # The hot loop of the parser: dispatch on the first character, markers only on '*'/'@'.
        while i <= last:
            line = lines[i]
            tag = line[:1]
            if tag == " " or not line:
                if i == last and line.strip() == END:
                    break  # a padded '*** End Patch' as the patch's last line
                new_from_old.append(len(old))
                old.append(line[1:])
                new.append(line[1:])
            elif tag == "-":
                old.append(line[1:])
            elif tag == "+":
                new_from_old.append(-1)
                new.append(line[1:])
            elif tag == "@" and line.startswith("@@"):
                break
            elif tag == "*" and line.rstrip() == EOF_MARK:
                end_of_file = True
                i += 1
                break
            else:
                self.i = i
                if self.is_header(line, in_hunk=True):
                    break
                if line.startswith(MOVE):
                    raise self.error(f"'{MOVE}' must come right after '{UPDATE} {path}'")
                raise self.error(
                    f"expected a hunk line of '{path}' starting with ' ' (context), "
                    f"'-' (remove) or '+' (add), or '@@', or '{EOF_MARK}', got {_shown(line)}"
                )
            i += 1
        self.i = i
        return old, new, new_from_old, end_of_file


def parse_patch(text: str) -> Patch:
    """Parse V4A patch text.

    Raises:
        PatchSyntaxError: the text breaks the grammar; the message names the patch line.
    """
    lines, first_line = _lines_of(text)
    return _Parser(lines, first_line).parse()
