"""Write every file of a patch, or none: temporary files, hard-link backups, renames, rollback.

1. Stage: create missing parent folders (remembered), write each new content to a temporary file
   next to its target. A failure here removes the temporaries and folders: nothing visible moved.
2. Back up: hard-link every file about to be replaced or deleted (invisible, no copy).
3. Swap: ``os.replace`` each temporary onto its target (atomic per file), then unlink deletions.
   A failure restores every target from its backup and removes files that did not exist.
4. Drop the backups.

Readers never see a half-written file. The sequence is atomic against our own failures (a full
disk, a permission error, an exception); a power cut between two renames can still leave some
files new and some old, as no POSIX filesystem offers a multi-file transaction.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from toolkits.apply_patch.errors import PatchError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Write:
    path: Path
    data: bytes
    mode: int | None = None  # permission bits to keep (an updated file); None: 0o666 & ~umask


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.{tag}")


def _make_parents(paths: Sequence[Path], created: list[Path]) -> None:
    for path in paths:
        missing = []
        parent = path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        if not parent.is_dir():
            raise PatchError(f"cannot create '{path.name}': '{parent.name}' is a file, not a folder")
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)


def _stage(write: Write) -> Path:
    tmp = _sibling(write.path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(write.data)
        if write.mode is not None:
            os.fchmod(fd, write.mode)
    finally:
        os.close(fd)
    return tmp


def _backup(path: Path) -> Path:
    backup = _sibling(path, "bak")
    try:
        os.link(path, backup, follow_symlinks=False)
    except OSError:  # a filesystem without hard links
        shutil.copy2(path, backup)
    return backup


def commit(writes: Sequence[Write], deletes: Sequence[Path]) -> None:
    """Apply all writes and deletes, or none of them.

    Raises:
        PatchError: a file could not be written; nothing on disk was changed.
    """
    created: list[Path] = []
    staged: dict[Path, Path] = {}
    backups: dict[Path, Path] = {}
    swapped: list[Path] = []
    removed: list[Path] = []
    try:
        _make_parents([w.path for w in writes], created)
        for w in writes:
            staged[w.path] = _stage(w)
        for path in [*(w.path for w in writes), *deletes]:
            if path.exists() or path.is_symlink():
                backups[path] = _backup(path)
        for w in writes:
            os.replace(staged[w.path], w.path)
            del staged[w.path]
            swapped.append(w.path)
        for path in deletes:
            os.unlink(path)
            removed.append(path)
    except BaseException as exc:
        _rollback(created, staged, backups, swapped, removed)
        if isinstance(exc, OSError):
            raise PatchError(f"could not write the patch, nothing was changed: {exc}") from exc
        raise
    for backup in backups.values():
        with contextlib.suppress(OSError):
            os.unlink(backup)


def _rollback(
    created: list[Path],
    staged: dict[Path, Path],
    backups: dict[Path, Path],
    swapped: list[Path],
    removed: list[Path],
) -> None:
    for path in [*swapped, *removed]:
        try:
            if path in backups:
                os.replace(backups.pop(path), path)
            else:
                os.unlink(path)
        except OSError as exc:  # pragma: no cover - only if the disk fails mid-rollback
            log.error("apply_patch.rollback_failed", path=str(path), error=str(exc))
    for path in [*staged.values(), *backups.values()]:
        with contextlib.suppress(OSError):
            os.unlink(path)
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()
