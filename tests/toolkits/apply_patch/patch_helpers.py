"""Helpers shared by the apply_patch tests: patch envelopes and tree snapshots."""

from __future__ import annotations

import os
from pathlib import Path


def wrap(*body: str) -> str:
    return "\n".join(["*** Begin Patch", *body, "*** End Patch"]) + "\n"


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: file bytes, symlink targets, folders (byte-exact state)."""
    state: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                state[rel] = ("dir",)
            else:
                state[rel] = ("file", path.read_bytes(), path.stat().st_mode)
    return state
