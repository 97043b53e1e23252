"""The folder a patch may touch: path checks (the jail) and the policy's allow/deny globs.

Every path of a patch is relative to the workspace. Refused: absolute paths (POSIX or Windows),
any ``..`` component, NUL bytes, the workspace itself, and paths whose resolved location (after
following symlinks of existing components) is outside the workspace. Then the policy's globs
apply to the path as written and to its resolved form: a path must match an allow glob and no
deny glob. Globs are gitignore-like: ``*`` and ``?`` stay within one component, ``**`` spans any
number of them, and a leading ``**/`` also matches at the top (``**/.env`` matches ``.env``).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from policies.config import ApplyPatchPolicy
from toolkits.apply_patch.errors import PathRefused

_DEFAULTS = ApplyPatchPolicy()


@functools.lru_cache(maxsize=256)
def glob_regex(glob: str) -> re.Pattern[str]:
    """Compile a path glob (see module docstring) to a regex matching whole relative paths."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (close := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : close]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = close + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_match(path: str, glob: str) -> bool:
    return glob_regex(glob).match(path) is not None


@dataclass(frozen=True, slots=True)
class Target:
    """A checked path: ``rel`` as the model names it (normalised), ``real`` the file on disk."""

    rel: str
    real: Path


class Workspace:
    """A jail for patch paths (the root is created if missing); ``allow``/``deny`` default to
    :class:`ApplyPatchPolicy`'s globs.

    Example::

        ws = Workspace(Path("/runs/42/files"), deny=["**/.env"])
        ws.target("src/app.py").real   # PosixPath('/runs/42/files/src/app.py')
        ws.target("../etc/passwd")     # raises PathRefused
    """

    def __init__(
        self,
        root: Path,
        *,
        allow: Sequence[str] = tuple(_DEFAULTS.allow_paths),
        deny: Sequence[str] = tuple(_DEFAULTS.deny_paths),
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.allow = tuple(allow)
        self.deny = tuple(deny)

    def _refuse(self, path: str, why: str) -> PathRefused:
        return PathRefused(f"path '{path}' refused: {why}", rule="apply_patch.paths")

    def target(self, path: str) -> Target:
        """Check ``path`` and resolve it inside the workspace.

        Raises:
            PathRefused: the path is absolute, uses ``..``, leaves the workspace through a
                symlink, or is not allowed by the policy's globs.
        """
        if "\x00" in path:
            raise self._refuse(path, "it contains a NUL byte")
        if PurePosixPath(path).is_absolute() or PureWindowsPath(path).drive or path[:1] == "\\":
            raise self._refuse(
                path, "paths must be relative to the workspace (e.g. 'src/app.py')"
            )
        if ".." in PurePosixPath(path).parts or ".." in PureWindowsPath(path).parts:
            raise self._refuse(path, "'..' is not allowed; paths stay inside the workspace")
        rel = posixpath.normpath(path)
        if rel in (".", ""):
            raise self._refuse(path, "it names the workspace itself, not a file")
        real = Path(os.path.realpath(self.root / rel))
        if real != self.root and not real.is_relative_to(self.root):
            raise self._refuse(path, "it leads out of the workspace through a symlink")
        if real == self.root:
            raise self._refuse(path, "it names the workspace itself, not a file")
        real_rel = real.relative_to(self.root).as_posix()
        for candidate in dict.fromkeys((rel, real_rel)):
            if not any(glob_match(candidate, g) for g in self.allow):
                raise self._refuse(path, "it is outside the paths this run may edit")
            denied = next((g for g in self.deny if glob_match(candidate, g)), None)
            if denied is not None:
                raise self._refuse(path, f"the policy protects files matching '{denied}'")
        return Target(rel, real)
