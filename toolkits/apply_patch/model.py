"""The parsed patch and the result of applying it: small typed records, no behaviour."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class Hunk(NamedTuple):  # immutable like the dataclasses here, and cheap to build by the 1,000
    """One ``@@`` section of an Update File operation.

    ``old`` are the lines the file must contain (context and removed lines, in order); ``new``
    replaces them. ``new_from_old[k]`` is the index into ``old`` that ``new[k]`` repeats (a
    context line) or -1 for an added line: context lines are copied from the file itself, so a
    fuzzy match never rewrites whitespace the model did not mean to touch.
    """

    anchors: tuple[str, ...]  # the ``@@ <text>`` headers, outermost first
    old: tuple[str, ...]
    new: tuple[str, ...]
    new_from_old: tuple[int, ...]
    end_of_file: bool  # ``*** End of File``: the old lines end the file
    line: int  # patch line of the hunk's first line (its ``@@`` or first body line)


@dataclass(frozen=True, slots=True)
class AddFile:
    path: str
    lines: tuple[str, ...]
    line: int
    kind: str = "add"


@dataclass(frozen=True, slots=True)
class DeleteFile:
    path: str
    line: int
    kind: str = "delete"


@dataclass(frozen=True, slots=True)
class UpdateFile:
    path: str
    move_to: str | None
    hunks: tuple[Hunk, ...]
    line: int
    kind: str = "update"


FileOp = AddFile | DeleteFile | UpdateFile


@dataclass(frozen=True, slots=True)
class Patch:
    ops: tuple[FileOp, ...]


class ChangeKind(enum.StrEnum):
    """The letter the reply shows for a file, as in ``git status --short`` and Codex."""

    ADDED = "A"
    UPDATED = "M"
    DELETED = "D"


@dataclass(frozen=True, slots=True)
class FileChange:
    kind: ChangeKind
    path: str  # workspace-relative, the destination for a move
    moved_from: str | None = None
    bytes_written: int = 0


@dataclass(frozen=True, slots=True)
class PatchResult:
    """What a patch changed. ``fuzz`` counts hunks that matched only after ignoring whitespace."""

    changes: tuple[FileChange, ...]
    fuzz: int = 0
    bytes_written: int = field(default=0)

    def _paths(self, kind: ChangeKind) -> list[str]:
        return [c.path for c in self.changes if c.kind is kind]

    @property
    def added(self) -> list[str]:
        return self._paths(ChangeKind.ADDED)

    @property
    def updated(self) -> list[str]:
        return self._paths(ChangeKind.UPDATED)

    @property
    def deleted(self) -> list[str]:
        return self._paths(ChangeKind.DELETED)

    @property
    def moved(self) -> list[tuple[str, str]]:
        return [(c.moved_from, c.path) for c in self.changes if c.moved_from is not None]

    def summary(self) -> str:
        """The reply the model was trained on (Codex): added, then modified, then deleted."""
        lines = ["Success. Updated the following files:"]
        for kind in (ChangeKind.ADDED, ChangeKind.UPDATED, ChangeKind.DELETED):
            lines += [f"{kind.value} {path}" for path in self._paths(kind)]
        return "\n".join(lines) + "\n"
