"""Which workspace paths apply_patch may touch.

Globs follow gitignore-like rules on ``/``-separated relative paths:

* ``**`` as a whole segment spans any number of directories, zero included
  (``**/x`` matches ``x`` and ``a/b/x``; ``a/**`` matches ``a`` and everything below it);
* ``*`` matches within one segment (never a ``/``), ``?`` one character of a segment;
* ``[abc]`` / ``[!abc]`` character classes, within one segment.

Deny patterns are matched case-insensitively (``.GIT/config`` is ``.git/config`` on a
case-insensitive file system) and win over allow patterns, which are case-sensitive.

:func:`path_allowed` is lexical; :func:`resolve_in_workspace` also follows symlinks and refuses a
path whose real location leaves the workspace or lands on a denied path.
"""

from __future__ import annotations

import functools
import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import PolicyDenied

if TYPE_CHECKING:
    from policies.config import ApplyPatchPolicy


@functools.lru_cache(maxsize=1024)
def glob_to_regex(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a path glob (see the module docstring) to an anchored regex."""
    segments = [s for s in pattern.strip().strip("/").split("/") if s not in ("", ".")]
    if not segments:
        raise ValueError(f"empty path glob {pattern!r}")
    parts: list[str] = []
    for i, seg in enumerate(segments):
        if seg == "**":
            if len(segments) == 1:
                parts.append(r".*")
            elif i == len(segments) - 1:  # a/** : the folder itself and everything below
                parts.append(r"(?:/.*)?")
            else:  # **/x and a/**/x : zero or more whole segments, each with its slash
                parts.append((r"/" if i else "") + r"(?:[^/]+/)*")
            continue
        sep = "/" if i and segments[i - 1] != "**" else ""
        parts.append(sep + _segment(seg))
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("".join(parts), flags | re.DOTALL)


def _segment(seg: str) -> str:
    out, i = [], 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            out.append(r"[^/]*")
        elif c == "?":
            out.append(r"[^/]")
        elif c == "[" and (end := seg.find("]", i + 2)) != -1:
            body = seg[i + 1 : end]
            neg = body[:1] in ("!", "^")
            body = re.escape(body[1:] if neg else body).replace(r"\-", "-")
            out.append(f"[{'^' if neg else ''}{body}]" if not neg else f"[^/{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def path_matches(relpath: str, pattern: str, *, ignore_case: bool = False) -> bool:
    """Whether a normalised relative path matches one glob."""
    return glob_to_regex(pattern, ignore_case=ignore_case).fullmatch(relpath) is not None


def normalize_relpath(relpath: str) -> str:
    """``a/./b//c`` → ``a/b/c``, ``a/../b`` → ``b``.

    Raises:
        ValueError: absolute, empty, escaping the workspace, or holding NUL or backslashes.
    """
    if not relpath or not relpath.strip():
        raise ValueError("the path is empty")
    if "\0" in relpath:
        raise ValueError("the path contains a NUL byte")
    if "\\" in relpath:
        raise ValueError("the path contains a backslash; use '/' between folders")
    if relpath.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", relpath):
        raise ValueError("the path is absolute; give it relative to the workspace root")
    norm = posixpath.normpath(relpath)
    if norm == ".":
        raise ValueError("the path names the workspace root itself, not a file")
    if norm == ".." or norm.startswith("../"):
        raise ValueError("the path leaves the workspace ('..' goes above its root)")
    return norm


def path_allowed(relpath: str, policy: ApplyPatchPolicy) -> tuple[bool, str]:
    """Whether apply_patch may create, change or delete ``relpath``. Returns (allowed, reason)."""
    try:
        path = normalize_relpath(relpath)
    except ValueError as exc:
        return False, f"path {relpath!r} refused: {exc}"
    for pattern in policy.deny_paths:
        if path_matches(path, pattern, ignore_case=True):
            return False, f"path {path!r} matches deny_paths entry {pattern!r}"
    for pattern in policy.allow_paths:
        if path_matches(path, pattern):
            return True, f"path {path!r} matches allow_paths entry {pattern!r}"
    return False, f"path {path!r} is not in allow_paths ({', '.join(policy.allow_paths)})"


def resolve_in_workspace(root: Path, relpath: str, policy: ApplyPatchPolicy) -> Path:
    """The real path ``relpath`` names under ``root``, following symlinks, if the policy allows it.

    Checks the path as written, then where it really leads: a symlink pointing outside ``root``
    or onto a denied path (``notes -> .git``) is refused. The file need not exist yet.

    Raises:
        PolicyDenied: the path (as written or resolved) is refused.
    """
    ok, why = path_allowed(relpath, policy)
    if not ok:
        raise PolicyDenied(why, rule="apply_patch.paths")
    real_root = root.resolve()
    target = (real_root / normalize_relpath(relpath)).resolve()
    if not target.is_relative_to(real_root):
        raise PolicyDenied(
            f"path {relpath!r} refused: it resolves to {target}, outside the workspace "
            "(through a symlink)",
            rule="apply_patch.symlink",
        )
    real_rel = target.relative_to(real_root).as_posix()
    if real_rel == ".":
        raise PolicyDenied(f"path {relpath!r} refused: it resolves to the workspace root itself",
                           rule="apply_patch.symlink")
    ok, why = path_allowed(real_rel, policy)
    if not ok:
        raise PolicyDenied(f"path {relpath!r} refused: it resolves to {real_rel!r}: {why}",
                           rule="apply_patch.symlink")
    return target
