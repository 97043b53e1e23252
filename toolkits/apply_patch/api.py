"""Apply a V4A patch to a workspace: parse, check paths, place hunks, then commit atomically.

Example::

    result = apply_patch(patch_text, Path("work"))
    print(result.summary())     # "Success. Updated the following files:\\nM src/app.py\\n"

Everything is checked before the first byte is written, and :mod:`.commit` makes the writes
all-or-nothing, so any error leaves the workspace exactly as it was.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import PolicyDenied
from toolkits.apply_patch.commit import Write, commit
from toolkits.apply_patch.errors import PatchError
from toolkits.apply_patch.matcher import Level, apply_placements, place_hunks
from toolkits.apply_patch.model import (
    AddFile,
    ChangeKind,
    DeleteFile,
    FileChange,
    Hunk,
    PatchResult,
    UpdateFile,
)
from toolkits.apply_patch.parser import parse_patch
from toolkits.apply_patch.text import join_text, split_text
from toolkits.apply_patch.workspace import Target, Workspace


@dataclass(frozen=True, slots=True)
class PatchPlan:
    """Everything a patch will do, computed without touching the disk."""

    writes: tuple[Write, ...]
    deletes: tuple[Path, ...]
    changes: tuple[FileChange, ...]
    fuzz: int

    @property
    def bytes_written(self) -> int:
        return sum(len(w.data) for w in self.writes)


def update_text(original: str, hunks: Sequence[Hunk], path: str = "file") -> tuple[str, int]:
    """Apply the hunks of one Update File to a file's text; returns it and the fuzzy hunk count.

    Raises:
        HunkMismatch: a hunk matches nowhere or several places.
    """
    lines, layout = split_text(original)
    placements = place_hunks(lines, hunks, path)
    fuzz = sum(p.level is not Level.EXACT for p in placements)
    return join_text(apply_placements(lines, placements), layout), fuzz


def _read_text(target: Target, verb: str) -> tuple[str, int]:
    if not target.real.exists():
        raise PatchError(f"{verb} File: '{target.rel}' does not exist")
    if not target.real.is_file():
        raise PatchError(f"{verb} File: '{target.rel}' is not a regular file")
    try:
        text = target.real.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PatchError(f"'{target.rel}' is not UTF-8 text; apply_patch edits text files only") from exc
    return text, stat.S_IMODE(target.real.stat().st_mode)


class _Planner:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.writes: list[Write] = []
        self.deletes: list[Path] = []
        self.changes: list[FileChange] = []
        self.fuzz = 0
        self.touched: dict[Path, str] = {}

    def target(self, path: str) -> Target:
        t = self.ws.target(path)
        if t.real in self.touched:
            raise PatchError(f"'{path}' and '{self.touched[t.real]}' are the same file; "
                             "put every change of one file in a single section")
        self.touched[t.real] = path
        return t

    def add(self, op: AddFile) -> None:
        t = self.target(op.path)
        if t.real.exists() or t.real.is_symlink():
            raise PatchError(f"Add File: '{t.rel}' already exists; use '*** Update File:' to change it")
        data = ("\n".join(op.lines) + "\n").encode() if op.lines else b""
        self.writes.append(Write(t.real, data))
        self.changes.append(FileChange(ChangeKind.ADDED, t.rel, bytes_written=len(data)))

    def delete(self, op: DeleteFile) -> None:
        t = self.target(op.path)
        # A symlink named by the patch is removed itself, never the file it points to.
        link = Path(os.path.realpath((self.ws.root / t.rel).parent)) / Path(t.rel).name
        if link.is_symlink():
            self.deletes.append(link)
        elif not t.real.exists():
            raise PatchError(f"Delete File: '{t.rel}' does not exist")
        elif not t.real.is_file():
            raise PatchError(f"Delete File: '{t.rel}' is not a regular file (folders are not deleted)")
        else:
            self.deletes.append(t.real)
        self.changes.append(FileChange(ChangeKind.DELETED, t.rel))

    def update(self, op: UpdateFile) -> None:
        t = self.target(op.path)
        original, mode = _read_text(t, "Update")
        text, fuzz = update_text(original, op.hunks, t.rel) if op.hunks else (original, 0)
        self.fuzz += fuzz
        data = text.encode()
        dest, moved_from = t, None
        if op.move_to is not None:
            d = self.ws.target(op.move_to)
            if d.real != t.real:
                if d.real.exists() or d.real.is_symlink():
                    raise PatchError(f"Move to: '{d.rel}' already exists; delete it first")
                if d.real in self.touched:
                    raise PatchError(f"'{op.move_to}' is changed twice by this patch")
                self.touched[d.real] = op.move_to
                dest, moved_from = d, t.rel
                self.deletes.append(t.real)
        self.writes.append(Write(dest.real, data, mode))
        self.changes.append(FileChange(ChangeKind.UPDATED, dest.rel, moved_from, len(data)))


def plan_patch(text: str, workspace: Workspace, *, max_patch_bytes: int | None = None) -> PatchPlan:
    """Parse and check a patch against the workspace; nothing is written.

    Raises:
        PatchSyntaxError: the text is not a valid patch.
        PatchError / HunkMismatch: a file is missing, exists already, or a hunk does not fit.
        PathRefused: a path leaves the workspace or is denied by the policy.
        PolicyDenied: the patch is larger than ``max_patch_bytes``.
    """
    size = len(text.encode())
    if max_patch_bytes is not None and size > max_patch_bytes:
        raise PolicyDenied(
            f"the patch is {size} bytes, more than the {max_patch_bytes} allowed; "
            "split it into several smaller patches",
            rule="apply_patch.max_patch_bytes",
        )
    patch = parse_patch(text)
    if not patch.ops:
        raise PatchError("the patch changes no files: add at least one file section")
    planner = _Planner(workspace)
    for op in patch.ops:
        match op:
            case AddFile():
                planner.add(op)
            case DeleteFile():
                planner.delete(op)
            case UpdateFile():
                planner.update(op)
    return PatchPlan(
        tuple(planner.writes), tuple(planner.deletes), tuple(planner.changes), planner.fuzz
    )


def commit_plan(plan: PatchPlan) -> PatchResult:
    """Write a plan atomically. Raises PatchError (nothing changed) when a write fails."""
    commit(plan.writes, plan.deletes)
    return PatchResult(plan.changes, plan.fuzz, plan.bytes_written)


def apply_patch(
    text: str,
    workspace: Path | str | Workspace,
    *,
    charge: Callable[[int], None] | None = None,
    max_patch_bytes: int | None = None,
) -> PatchResult:
    """Apply V4A patch text to the files under ``workspace``: all files change, or none.

    ``charge`` is called with the number of bytes about to be written and may raise to refuse
    (e.g. ``lambda n: policy.charge("apply_patch_bytes", n)``).

    Raises:
        PatchSyntaxError, PatchError, HunkMismatch, PathRefused, PolicyDenied: see
        :func:`plan_patch`; the workspace is unchanged.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(Path(workspace))
    plan = plan_patch(text, ws, max_patch_bytes=max_patch_bytes)
    if charge is not None:
        charge(plan.bytes_written)
    return commit_plan(plan)
