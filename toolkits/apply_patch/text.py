"""A text file as lines plus the layout to write it back byte for byte.

A file keeps its line ending (LF or CRLF), its final newline (or its absence) and a UTF-8 BOM.
Lines are split on ``\\n`` only: ``str.splitlines`` would also split on U+2028, form feeds and
other characters that are ordinary text inside a line of source code.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class Layout:
    newline: str = "\n"  # "\r\n" when every line break of the file is CRLF
    final_newline: bool = True
    bom: bool = False


def split_text(text: str) -> tuple[list[str], Layout]:
    """Lines without their breaks, and the layout that :func:`join_text` needs to rebuild it.

    A file mixing LF and CRLF is read as LF, so its CRs stay in their lines: untouched lines are
    then written back unchanged, and matching ignores the CR as trailing whitespace.
    """
    bom = text.startswith(_BOM)
    if bom:
        text = text[1:]
    # Most files are LF: one look at the first break decides, without counting the whole text.
    first = text.find("\n")
    crlf = first > 0 and text[first - 1] == "\r" and text.count("\r\n") == text.count("\n")
    newline = "\r\n" if crlf else "\n"
    if not text:
        return [], Layout(newline, True, bom)
    lines = text.split(newline)
    final = lines[-1] == ""
    if final:
        lines.pop()
    return lines, Layout(newline, final, bom)


def join_text(lines: list[str], layout: Layout) -> str:
    body = layout.newline.join(lines)
    if lines and layout.final_newline:
        body += layout.newline
    return (_BOM + body) if layout.bom else body
