from __future__ import annotations

import pytest
from patch_helpers import wrap

from toolkits.apply_patch import PatchSyntaxError, parse_patch
from toolkits.apply_patch.model import AddFile, DeleteFile, UpdateFile


def test_every_operation_parses() -> None:
    patch = parse_patch(wrap(
        "*** Add File: hello.txt",
        "+Hello world",
        "+",
        "*** Update File: src/app.py",
        "*** Move to: src/main.py",
        "@@ def greet():",
        '-print("Hi")',
        '+print("Hello, world!")',
        "*** Delete File: obsolete.txt",
    ))
    add, update, delete = patch.ops
    assert add == AddFile("hello.txt", ("Hello world", ""), line=2)
    assert isinstance(update, UpdateFile) and update.move_to == "src/main.py"
    (hunk,) = update.hunks
    assert hunk.anchors == ("def greet():",)
    assert hunk.old == ('print("Hi")',) and hunk.new == ('print("Hello, world!")',)
    assert hunk.new_from_old == (-1,) and hunk.line == 7
    assert delete == DeleteFile("obsolete.txt", line=10)


def test_hunk_lines_context_end_of_file_and_first_hunk_without_header() -> None:
    patch = parse_patch(wrap(
        "*** Update File: a.txt",
        " keep",
        "-old",
        "+new",
        "",
        "@@ class A",
        "@@     def f",
        " x",
        "+y",
        "*** End of File",
    ))
    first, second = patch.ops[0].hunks  # type: ignore[union-attr]
    assert first.old == ("keep", "old", "") and first.new == ("keep", "new", "")
    assert first.new_from_old == (0, -1, 2)
    assert second.anchors == ("class A", "def f") and second.end_of_file


def test_leniencies_crlf_heredoc_padding_and_unified_ranges() -> None:
    text = "<<'EOF'\r\n  *** Begin Patch  \r\n*** Update File: a\r\n@@ -1,2 +1,2 @@\r\n-a\r\n+b\r\n*** End Patch \r\nEOF\r\n"
    (op,) = parse_patch(text).ops
    assert isinstance(op, UpdateFile)
    assert op.hunks[0].anchors == () and op.hunks[0].old == ("a",)


def test_context_line_quoting_a_marker_is_context() -> None:
    (op,) = parse_patch(wrap("*** Update File: doc.md", "@@", " *** End Patch", "-x", "+y")).ops
    assert op.hunks[0].old == ("*** End Patch", "x")  # type: ignore[union-attr]


def test_empty_lines_inside_add_file_are_kept_between_plus_lines() -> None:
    (op,) = parse_patch(wrap("*** Add File: a", "+one", "", "+three", "")).ops
    assert op == AddFile("a", ("one", "", "three"), line=2)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "first line of a patch must be '*** Begin Patch'"),
        ("*** Update File: a\n@@\n-x\n*** End Patch", 1, "got '*** Update File: a'"),
        ("*** Begin Patch\n*** Add File: a\n+x", 4, "ended without '*** End Patch'"),
        (wrap("*** Frobnicate File: a"), 2, "expected a file header"),
        (wrap("*** Add File: a", "oops"), 3, "must start with '+'"),
        (wrap("*** Add File: "), 2, "needs a path"),
        (wrap("*** Update File: a"), 2, "has no hunks"),
        (wrap("*** Update File: a", "@@", "?x"), 4, "starting with ' ' (context)"),
        (wrap("*** Update File: a", "@@", "*** End of File"), 3, "has no lines"),
        (wrap("*** Update File: a", "@@", "-x", "*** Move to: b"), 5, "must come right after"),
        (wrap("*** Delete File: a", "*** Delete File: ./a"), 3, "already appears at line 2"),
        (wrap("*** Update File: a", "*** Move to: b", "@@", "-x", "*** Add File: b", "+y"), 6,
         "already appears at line 3"),
        ("*** Begin Patch\n*** End Patch\ntrailing\n*** End Patch", 3, "unexpected text after"),
    ],
)
def test_syntax_errors_name_the_line_and_what_was_expected(
    text: str, line: int, fragment: str
) -> None:
    with pytest.raises(PatchSyntaxError) as caught:
        parse_patch(text)
    assert caught.value.line == line
    assert f"line {line}:" in caught.value.message
    assert fragment in caught.value.message
