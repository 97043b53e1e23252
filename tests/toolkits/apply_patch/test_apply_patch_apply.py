"""Golden cases: each operation on disk, the matching rules, layouts, and each apply error."""

from __future__ import annotations

from pathlib import Path

import pytest
from patch_helpers import snapshot, wrap

from toolkits.apply_patch import HunkMismatch, PatchError, apply_patch


def write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_add_update_delete_and_move_in_one_patch(tmp_path: Path) -> None:
    write(tmp_path, "src/app.py", 'def greet():\n    print("Hi")\n')
    write(tmp_path, "obsolete.txt", "old\n")
    result = apply_patch(wrap(
        "*** Add File: hello.txt",
        "+Hello world",
        "*** Update File: src/app.py",
        "*** Move to: src/main.py",
        "@@ def greet():",
        '-    print("Hi")',
        '+    print("Hello, world!")',
        "*** Delete File: obsolete.txt",
    ), tmp_path)
    assert result.summary() == (
        "Success. Updated the following files:\nA hello.txt\nM src/main.py\nD obsolete.txt\n"
    )
    assert result.moved == [("src/app.py", "src/main.py")]
    assert (tmp_path / "hello.txt").read_text() == "Hello world\n"
    assert (tmp_path / "src/main.py").read_text() == 'def greet():\n    print("Hello, world!")\n'
    assert not (tmp_path / "src/app.py").exists() and not (tmp_path / "obsolete.txt").exists()
    assert result.bytes_written == len("Hello world\n") + len('def greet():\n    print("Hello, world!")\n')


def test_add_file_creates_folders_and_empty_files(tmp_path: Path) -> None:
    apply_patch(wrap("*** Add File: a/b/c.txt", "+x", "*** Add File: empty.txt"), tmp_path)
    assert (tmp_path / "a/b/c.txt").read_text() == "x\n"
    assert (tmp_path / "empty.txt").read_bytes() == b""


def test_several_hunks_in_order_and_end_of_file(tmp_path: Path) -> None:
    write(tmp_path, "f.txt", "a\nb\nc\nd\ne\nf\n")
    apply_patch(wrap(
        "*** Update File: f.txt", "@@", " a", "-b", "+B", "@@", " c", " d", "-e", "+E",
        "@@", " f", "+g", "*** End of File",
    ), tmp_path)
    assert (tmp_path / "f.txt").read_text() == "a\nB\nc\nd\nE\nf\ng\n"


def test_pure_addition_goes_after_the_anchor_or_at_the_end(tmp_path: Path) -> None:
    write(tmp_path, "f.txt", "one\ntwo\nthree\n")
    apply_patch(wrap("*** Update File: f.txt", "@@ one", "+one-and-a-half"), tmp_path)
    apply_patch(wrap("*** Update File: f.txt", "@@", "+four"), tmp_path)
    assert (tmp_path / "f.txt").read_text() == "one\none-and-a-half\ntwo\nthree\nfour\n"


def test_match_ignoring_trailing_whitespace_keeps_the_files_context(tmp_path: Path) -> None:
    write(tmp_path, "f.py", "x = 1   \ny = 2\t\nz = 3\n")
    result = apply_patch(wrap("*** Update File: f.py", "@@", " x = 1", "-y = 2", "+y = 20"), tmp_path)
    assert result.fuzz == 1
    assert (tmp_path / "f.py").read_text() == "x = 1   \ny = 20\nz = 3\n"


def test_match_ignoring_indentation_reindents_added_lines(tmp_path: Path) -> None:
    write(tmp_path, "f.py", "class A:\n    def f(self):\n        return 1\n")
    apply_patch(wrap(
        "*** Update File: f.py", "@@", "def f(self):", "-    return 1",
        "+    x = 2", "+    return x",
    ).replace("\ndef f", "\n def f"), tmp_path)
    assert (tmp_path / "f.py").read_text() == (
        "class A:\n    def f(self):\n        x = 2\n        return x\n"
    )


def test_trailing_blank_context_lines_are_tolerated(tmp_path: Path) -> None:
    write(tmp_path, "f.txt", "a\nb")
    apply_patch(wrap("*** Update File: f.txt", "@@", " a", "-b", "+c", ""), tmp_path)
    assert (tmp_path / "f.txt").read_bytes() == b"a\nc"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b"one\r\ntwo\r\nthree\r\n", b"one\r\n2\r\nthree\r\n"),  # CRLF kept
        (b"one\ntwo\nthree", b"one\n2\nthree"),  # no final newline kept
        (b"one\r\ntwo\r\nthree", b"one\r\n2\r\nthree"),
        (b"\xef\xbb\xbfone\ntwo\nthree\n", b"\xef\xbb\xbfone\n2\nthree\n"),  # BOM kept
        (b"one\ntwo\r\nthree\n", b"one\n2\nthree\n"),  # mixed: untouched lines stay as they were
    ],
)
def test_line_endings_final_newline_and_bom_are_kept(
    tmp_path: Path, before: bytes, after: bytes
) -> None:
    write(tmp_path, "f.txt", before)
    apply_patch(wrap("*** Update File: f.txt", "@@", " one", "-two", "+2", " three"), tmp_path)
    assert (tmp_path / "f.txt").read_bytes() == after


def test_unicode_lines_and_unicode_line_separators(tmp_path: Path) -> None:
    write(tmp_path, "u.txt", "héllo wörld\nsep\u2028inside\n日本語\n😀 emoji\n")
    apply_patch(wrap(
        "*** Update File: u.txt", "@@", " sep\u2028inside", "-日本語", "+中文", " 😀 emoji",
    ), tmp_path)
    assert (tmp_path / "u.txt").read_text() == "héllo wörld\nsep\u2028inside\n中文\n😀 emoji\n"


def test_file_mode_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "run.sh", "echo a\n")
    path.chmod(0o755)
    apply_patch(wrap("*** Update File: run.sh", "@@", "-echo a", "+echo b"), tmp_path)
    assert path.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize(
    ("body", "error", "fragments"),
    [
        (["*** Update File: missing.txt", "@@", "-x"], PatchError, ["'missing.txt' does not exist"]),
        (["*** Delete File: missing.txt"], PatchError, ["does not exist"]),
        (["*** Add File: f.py", "+x"], PatchError, ["already exists", "Update File"]),
        (["*** Update File: f.py", "*** Move to: g.py", "@@", "-a = 1"], PatchError, ["already exists"]),
        (["*** Delete File: d"], PatchError, ["not a regular file"]),
        (["*** Update File: bin.dat", "@@", "-x"], PatchError, ["not UTF-8 text"]),
        (["*** Update File: f.py", "@@", "-a = 100"], HunkMismatch,
         ["hunk 1 of 'f.py' (patch line 3)", "not found", "   1 | a = 1", "closest lines"]),
        (["*** Update File: f.py", "@@", "-    return a"], HunkMismatch,
         ["matches several places", "lines 4, 7", "'@@ def one():'", "'@@ def two():'"]),
        (["*** Update File: f.py", "@@", " def two():", "-    return a", "+    return b", "@@",
          " def one():", "-    return a", "+    return c"], HunkMismatch,
         ["hunk 2 of 'f.py'", "before the place the search started", "file order"]),
        (["*** Update File: f.py", "@@ def three():", "-    return a"], HunkMismatch,
         ["'@@ def three():' header", "not found", "def two():"]),
        ([], PatchError, ["changes no files"]),
    ],
)
def test_apply_errors_explain_and_change_nothing(
    tmp_path: Path, body: list[str], error: type[Exception], fragments: list[str]
) -> None:
    write(tmp_path, "f.py", "a = 1\n\ndef one():\n    return a\n\ndef two():\n    return a\n")
    write(tmp_path, "g.py", "")
    write(tmp_path, "bin.dat", b"\xff\xfe\x00x\n")
    (tmp_path / "d").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(error) as caught:
        apply_patch(wrap(*body), tmp_path)
    message = str(caught.value).lower()
    for fragment in fragments:
        assert fragment.lower() in message
    assert snapshot(tmp_path) == before


def test_unique_match_after_the_anchor_wins_over_earlier_copies(tmp_path: Path) -> None:
    write(tmp_path, "f.py", "def one():\n    return a\n\ndef two():\n    return a\n")
    apply_patch(wrap("*** Update File: f.py", "@@ def two():", "-    return a", "+    return b"), tmp_path)
    assert (tmp_path / "f.py").read_text().endswith("def two():\n    return b\n")


def test_rename_only_keeps_the_bytes(tmp_path: Path) -> None:
    write(tmp_path, "old/name.txt", b"x\r\ny")
    result = apply_patch(wrap("*** Update File: old/name.txt", "*** Move to: new/name.txt"), tmp_path)
    assert result.summary() == "Success. Updated the following files:\nM new/name.txt\n"
    assert (tmp_path / "new/name.txt").read_bytes() == b"x\r\ny"
    assert not (tmp_path / "old/name.txt").exists()


def test_end_of_file_prefers_the_last_copy(tmp_path: Path) -> None:
    write(tmp_path, "f.txt", "end\nmiddle\nend\n")
    apply_patch(wrap("*** Update File: f.txt", "@@", "-end", "+END", "*** End of File"), tmp_path)
    assert (tmp_path / "f.txt").read_text() == "end\nmiddle\nEND\n"
