"""Paths stay inside the workspace: absolute paths, '..', symlinks out, and policy globs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from patch_helpers import snapshot, wrap

from agent.errors import PolicyDenied
from toolkits.apply_patch import PathRefused, Workspace, apply_patch
from toolkits.apply_patch.workspace import glob_match


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("keep\n")
    (ws / "inside.txt").write_text("a\n")
    os.symlink(outside, ws / "out_dir")
    os.symlink(outside / "secret.txt", ws / "out_file")
    os.symlink(ws / "inside.txt", ws / "alias.txt")
    return ws, outside


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (["*** Add File: /tmp/evil.txt", "+x"], "relative to the workspace"),
        (["*** Add File: C:\\evil.txt", "+x"], "relative to the workspace"),
        (["*** Add File: ../evil.txt", "+x"], "'..' is not allowed"),
        (["*** Add File: sub/../../evil.txt", "+x"], "'..' is not allowed"),
        (["*** Add File: out_dir/evil.txt", "+x"], "symlink"),
        (["*** Update File: out_file", "@@", "-keep", "+gone"], "symlink"),
        (["*** Delete File: out_dir/secret.txt"], "symlink"),
        (["*** Update File: inside.txt", "*** Move to: out_dir/moved.txt", "@@", "-a", "+b"],
         "symlink"),
        (["*** Add File: .", "+x"], "workspace itself"),
        (["*** Add File: .git/config", "+x"], "protects files matching '.git/**'"),
        (["*** Add File: deep/.env", "+x"], "'**/.env'"),
        (["*** Add File: keys/server.pem", "+x"], "'**/*.pem'"),
    ],
)
def test_escapes_and_denied_paths_are_refused(
    layout: tuple[Path, Path], body: list[str], why: str
) -> None:
    ws, outside = layout
    before, before_out = snapshot(ws), snapshot(outside)
    with pytest.raises(PathRefused) as caught:
        apply_patch(wrap(*body), ws)
    assert isinstance(caught.value, PolicyDenied) and caught.value.rule == "apply_patch.paths"
    assert why in caught.value.message
    assert snapshot(ws) == before and snapshot(outside) == before_out


def test_symlink_inside_the_workspace_is_followed(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    apply_patch(wrap("*** Update File: alias.txt", "@@", "-a", "+b"), ws)
    assert (ws / "inside.txt").read_text() == "b\n"
    assert (ws / "alias.txt").is_symlink()


def test_deleting_a_symlink_removes_the_link_not_its_target(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    apply_patch(wrap("*** Delete File: alias.txt"), ws)
    assert not (ws / "alias.txt").is_symlink() and (ws / "inside.txt").read_text() == "a\n"


def test_allow_list_limits_the_editable_paths(tmp_path: Path) -> None:
    ws = Workspace(tmp_path, allow=["src/**", "*.md"], deny=[])
    apply_patch(wrap("*** Add File: src/a/b.py", "+x", "*** Add File: README.md", "+y"), ws)
    with pytest.raises(PathRefused, match="outside the paths this run may edit"):
        apply_patch(wrap("*** Add File: docs/c.md", "+z"), ws)


@pytest.mark.parametrize(
    ("path", "glob", "matches"),
    [
        (".env", "**/.env", True),
        ("a/b/.env", "**/.env", True),
        ("a/.env.local", "**/.env.*", True),
        ("my_secret_notes.txt", "**/*secret*", True),
        (".git/config", ".git/**", True),
        ("sub/.git/HEAD", "**/.git/**", True),
        ("src/app.py", "src/*.py", True),
        ("src/pkg/app.py", "src/*.py", False),
        ("src/pkg/app.py", "src/**/*.py", True),
        ("a.txt", "?.txt", True),
        ("a.txt", "[!a].txt", False),
        ("notes.txt", "**/*.pem", False),
    ],
)
def test_globs(path: str, glob: str, matches: bool) -> None:
    assert glob_match(path, glob) is matches
