"""Property tests: generated patches apply back exactly; failing patches change nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from patch_helpers import snapshot

from agent.errors import ToolError, UserError
from toolkits.apply_patch import (
    apply_patch,
    diff_files,
    make_patch,
    parse_patch,
    update_text,
)
from toolkits.apply_patch.text import Layout, join_text, split_text

# Few distinct lines, so files repeat lines and hunks must grow context to be unambiguous;
# whitespace variants exercise the levels; U+2028 and form feed are not line breaks here.
COMMON = ["a", "b", "", "  a", "a  ", "\tb", "}", "x = 1", "é😀", "sep\u2028x", "\x0cpage"]
line_st = st.one_of(
    st.sampled_from(COMMON),
    st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=8),
)
layout_st = st.builds(
    Layout, newline=st.sampled_from(["\n", "\r\n"]), final_newline=st.booleans(), bom=st.booleans()
)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def edited(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    old = draw(st.lists(line_st, max_size=30))
    new = list(old)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        if kind == "insert":
            new.insert(draw(st.integers(0, len(new))), draw(line_st))
        elif new:
            at = draw(st.integers(0, len(new) - 1))
            if kind == "delete":
                del new[at]
            else:
                new[at] = draw(line_st)
    return old, new


@SETTINGS
@given(edited(), layout_st, st.integers(0, 3))
def test_generated_patch_applies_back_to_the_edited_file(
    lines: tuple[list[str], list[str]], layout: Layout, context: int
) -> None:
    old_lines, new_lines = lines
    old = join_text(old_lines, layout)
    expected = join_text(new_lines, split_text(old)[1])
    try:
        patch = make_patch(old, expected, "f.txt", context=context)
    except UserError:
        # e.g. a last empty line added to a file without a final newline: the new text then
        # ends with a newline, a change of layout that V4A cannot express
        old_layout, new_layout = split_text(old)[1], split_text(expected)[1]
        assert (old_layout.final_newline, old_layout.bom) != (new_layout.final_newline, new_layout.bom)
        return
    (op,) = parse_patch(patch).ops if old != expected else (None,)
    if op is None:
        return
    result, fuzz = update_text(old, op.hunks, "f.txt")  # type: ignore[union-attr]
    assert result == expected
    assert fuzz == 0


files_st = st.dictionaries(
    st.sampled_from(["a.txt", "dir/b.txt", "dir/sub/c.txt", "d.md"]),
    st.tuples(edited(), layout_st),
    max_size=3,
)


def _texts(files: dict[str, tuple[tuple[list[str], list[str]], Layout]]) -> tuple[dict[str, str], dict[str, str]]:
    before = {p: join_text(old, layout) for p, ((old, _), layout) in files.items()}
    after = {p: join_text(new, split_text(before[p])[1]) for p, ((_, new), _) in files.items()}
    for path, text in after.items():
        was, now = split_text(before[path])[1], split_text(text)[1]
        if text and (was.final_newline, was.bom) != (now.final_newline, now.bom):
            after[path] = before[path]  # a layout change V4A cannot express (see above)
    return before, after


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(text.encode())


@SETTINGS
@given(files_st, st.sets(st.sampled_from(["a.txt", "d.md", "new.txt", "dir/new.txt"])), st.data())
def test_patches_between_trees_apply_and_broken_ones_change_nothing(
    files: dict[str, tuple[tuple[list[str], list[str]], Layout]],
    toggled: set[str],
    data: st.DataObject,
) -> None:
    before, after = _texts(files)
    for path in toggled:  # delete some files, add others (added files are LF with a final newline)
        if path in after:
            del after[path]
        else:
            after[path] = join_text(data.draw(st.lists(line_st, max_size=5)), Layout())
    if before == after:
        return
    patch = diff_files(before, after)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, before)
        state = snapshot(root)
        broken = data.draw(st.sampled_from([
            patch.replace("*** End Patch", "*** Delete File: missing.txt\n*** End Patch"),
            patch.replace("*** End Patch", "*** Update File: nope.txt\n@@\n-x\n*** End Patch"),
            patch.replace("\n@@\n", "\n@@\n-line that is in no file\n", 1),
            patch.replace("*** End Patch", "*** Add File: ../escape.txt\n+x\n*** End Patch"),
            patch.replace("*** Begin Patch\n", "*** Begin Patch\nnot a header\n"),
        ]))
        if broken != patch:
            with pytest.raises(ToolError):
                apply_patch(broken, root)
            assert snapshot(root) == state
        apply_patch(patch, root)
        on_disk = {
            p.relative_to(root).as_posix(): p.read_bytes().decode()
            for p in root.rglob("*") if p.is_file()
        }
        assert on_disk == after
