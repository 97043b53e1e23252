"""Errors of the apply_patch toolkit, all of them signals to the model.

    ToolError                      (agent.errors)
    ├── PatchError                 the patch cannot be applied as written
    │   ├── PatchSyntaxError       the text is not a valid V4A patch (carries the patch line)
    │   └── HunkMismatch           a hunk matches no place, or several places, of its file
    └── PolicyDenied               (agent.errors)
        └── PathRefused            a path leaves the workspace or is denied by the policy's globs

Every message says where (patch line, file, file line) and what was expected, so the model can
send a corrected patch. Nothing on disk has changed when any of them is raised.
"""

from __future__ import annotations

from agent.errors import PolicyDenied, ToolError


class PatchError(ToolError):
    """The patch is well-formed text but cannot be applied (missing file, file exists, ...)."""


class PatchSyntaxError(PatchError):
    """The patch text breaks the V4A grammar; ``line`` is the 1-based line of the patch text."""

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"Invalid patch at line {line}: {message}")
        self.line = line


class HunkMismatch(PatchError):
    """A hunk's context and removed lines match nowhere, or in several places, of its file."""

    def __init__(self, message: str, *, path: str, patch_line: int) -> None:
        super().__init__(message)
        self.path = path
        self.patch_line = patch_line


class PathRefused(PolicyDenied):
    """A path is absolute, uses ``..``, leaves the workspace through a symlink, or is denied."""
