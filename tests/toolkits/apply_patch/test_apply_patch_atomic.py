"""All files of a patch change, or none: failures at every stage leave the tree byte-identical."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from patch_helpers import snapshot, wrap

from agent.errors import PolicyDenied
from policies.config import Budgets, Policy
from policies.run import RunPolicy
from toolkits.apply_patch import HunkMismatch, PatchError, apply_patch

PATCH = wrap(
    "*** Add File: new/dir/added.txt",
    "+added",
    "*** Update File: one.txt",
    "@@",
    "-one",
    "+ONE",
    "*** Update File: two.txt",
    "*** Move to: moved/two.txt",
    "@@",
    "-two",
    "+TWO",
    "*** Delete File: three.txt",
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("one", "two", "three"):
        (tmp_path / f"{name}.txt").write_text(f"{name}\n")
    return tmp_path


def test_the_patch_applies_when_nothing_fails(tree: Path) -> None:
    apply_patch(PATCH, tree)
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()) == [
        "moved/two.txt", "new/dir/added.txt", "one.txt",
    ]


def test_a_late_hunk_mismatch_leaves_every_file_unchanged(tree: Path) -> None:
    before = snapshot(tree)
    with pytest.raises(HunkMismatch):
        apply_patch(PATCH.replace("-two", "-deux"), tree)
    assert snapshot(tree) == before


@pytest.mark.parametrize("failing_call", [1, 2, 3])
def test_a_rename_failing_mid_commit_is_rolled_back(
    tree: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    before = snapshot(tree)
    real_replace, calls = os.replace, []

    def flaky_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(dst)
        if len(calls) == failing_call:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(PatchError, match="nothing was changed: .*No space left"):
        apply_patch(PATCH, tree)
    monkeypatch.undo()
    assert snapshot(tree) == before


def test_a_failing_delete_is_rolled_back(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(tree)

    real_unlink = os.unlink

    def refuse_three(path: str | os.PathLike[str], **kwargs: object) -> None:
        if os.fspath(path).endswith("three.txt"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        real_unlink(path)

    monkeypatch.setattr(os, "unlink", refuse_three)
    with pytest.raises(PatchError, match="Permission denied"):
        apply_patch(PATCH, tree)
    monkeypatch.undo()
    assert snapshot(tree) == before


def test_a_file_where_a_folder_is_needed_fails_cleanly(tree: Path) -> None:
    before = snapshot(tree)
    with pytest.raises(PatchError):
        apply_patch(wrap("*** Add File: a", "+x", "*** Add File: a/b", "+y"), tree)
    assert snapshot(tree) == before


def test_a_spent_byte_budget_refuses_before_writing(tree: Path) -> None:
    policy = RunPolicy(Policy(budgets=Budgets(apply_patch_bytes=10)))
    before = snapshot(tree)
    with pytest.raises(PolicyDenied, match="bytes written by apply_patch"):
        apply_patch(PATCH, tree, charge=lambda n: policy.charge("apply_patch_bytes", n))
    assert snapshot(tree) == before
    apply_patch(wrap("*** Add File: small.txt", "+123"), tree,
                charge=lambda n: policy.charge("apply_patch_bytes", n))
    assert policy.spent["apply_patch_bytes"] == 4


def test_oversized_patches_are_refused(tree: Path) -> None:
    with pytest.raises(PolicyDenied, match="split it into several smaller patches"):
        apply_patch(PATCH, tree, max_patch_bytes=20)
