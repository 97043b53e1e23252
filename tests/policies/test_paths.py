"""apply_patch path rules: glob semantics (property-tested), defaults, symlink escapes."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import PolicyDenied
from policies.config import ApplyPatchPolicy
from policies.paths import normalize_relpath, path_allowed, path_matches, resolve_in_workspace

# Few examples, no deadline: CI has two busy cores and these run on every push.
FAST = settings(max_examples=50, deadline=None)

segment = st.text("abcxyz019_-.", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
relpath = st.lists(segment, min_size=1, max_size=5).map("/".join)
glob_segment = st.text("abcxyz01_-.*?", min_size=1, max_size=5).filter(
    lambda s: s not in (".", "..") and "**" not in s
)


@FAST
@given(st.lists(segment, min_size=2, max_size=5))
def test_star_never_spans_a_slash(segments: list[str]) -> None:
    path = "/".join(segments)
    assert not path_matches(path, "*")
    assert path_matches(segments[-1], "*")
    assert path_matches(path, "/".join("*" for _ in segments))


@FAST
@given(st.lists(segment, max_size=4), segment)
def test_double_star_prefix_spans_any_number_of_folders(folders: list[str], name: str) -> None:
    path = "/".join([*folders, name])
    assert path_matches(path, f"**/{name}")
    assert path_matches(path, "**")


@FAST
@given(segment, st.lists(segment, max_size=4))
def test_trailing_double_star_matches_the_folder_and_everything_below(top: str, rest) -> None:
    assert path_matches("/".join([top, *rest]), f"{top}/**")
    assert not path_matches(top + "x", f"{top}/**")


@FAST
@given(segment, st.lists(segment, max_size=3), segment)
def test_inner_double_star_matches_zero_or_more_folders(a: str, middle, b: str) -> None:
    assert path_matches("/".join([a, *middle, b]), f"{a}/**/{b}")


@FAST
@given(st.lists(glob_segment, min_size=1, max_size=4), st.lists(segment, min_size=1, max_size=4))
def test_globs_without_double_star_agree_with_per_segment_fnmatch(pattern_segments, segments):
    expected = len(pattern_segments) == len(segments) and all(
        fnmatch.fnmatchcase(s, p) for s, p in zip(segments, pattern_segments, strict=True)
    )
    assert path_matches("/".join(segments), "/".join(pattern_segments)) == expected


@FAST
@given(st.lists(st.sampled_from(["a", "b", "..", ".", ""]), min_size=1, max_size=8).map("/".join))
def test_an_allowed_path_never_leaves_the_workspace(path: str) -> None:
    ok, reason = path_allowed(path, ApplyPatchPolicy())
    if ok:
        norm = normalize_relpath(path)
        assert not norm.startswith(("/", "..")) and norm != "."
    else:
        assert reason


@FAST
@given(relpath)
def test_deny_matching_ignores_case(path: str) -> None:
    policy = ApplyPatchPolicy(deny_paths=[path])
    assert not path_allowed(path.upper(), policy)[0]
    assert not path_allowed(path.lower(), policy)[0]


@pytest.mark.parametrize(
    "path",
    [
        ".git/config", ".git", ".GIT/hooks/pre-commit", "vendor/lib/.git/HEAD", ".env",
        "app/.env.production", "certs/server.pem", "deploy/prod.key", "home/.ssh/authorized_keys",
        "id_rsa", "keys/id_ed25519.pub", "config/secrets.yaml", ".netrc",
        "../outside.txt", "/etc/passwd", "a/../../b", "C:/Windows/win.ini", "a\\b", "", ".",
    ],
)
def test_default_policy_refuses_git_secrets_and_escapes(path: str) -> None:
    ok, reason = path_allowed(path, ApplyPatchPolicy())
    assert not ok and reason


@pytest.mark.parametrize("path", ["README.md", "src/pkg/mod.py", "./docs//guide.md", "a/b/../c.txt"])
def test_default_policy_allows_ordinary_files(path: str) -> None:
    assert path_allowed(path, ApplyPatchPolicy())[0]


def test_allow_list_limits_to_listed_folders() -> None:
    policy = ApplyPatchPolicy(allow_paths=["src/**", "*.md"], deny_paths=["src/generated/**"])
    assert path_allowed("src/a/b.py", policy)[0]
    assert path_allowed("NOTES.md", policy)[0]
    assert not path_allowed("docs/x.md", policy)[0]
    ok, reason = path_allowed("src/generated/x.py", policy)
    assert not ok and "src/generated/**" in reason
    ok, reason = path_allowed("setup.py", policy)
    assert not ok and "not in allow_paths" in reason


def test_symlink_out_of_the_workspace_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(PolicyDenied, match="outside the workspace") as info:
        resolve_in_workspace(root, "link/file.txt", ApplyPatchPolicy())
    assert info.value.rule == "apply_patch.symlink"


def test_symlink_onto_a_denied_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    os.symlink(tmp_path / ".git", tmp_path / "notes")
    with pytest.raises(PolicyDenied, match=r"resolves to '.git/config'"):
        resolve_in_workspace(tmp_path, "notes/config", ApplyPatchPolicy())


def test_resolve_in_workspace_returns_the_real_target(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    os.symlink(tmp_path / "src", tmp_path / "alias")
    assert resolve_in_workspace(tmp_path, "alias/new.py", ApplyPatchPolicy()) == (
        tmp_path / "src" / "new.py"
    ).resolve()
    with pytest.raises(PolicyDenied, match="deny_paths"):
        resolve_in_workspace(tmp_path, ".git/HEAD", ApplyPatchPolicy())
