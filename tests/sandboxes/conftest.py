"""Sandboxes of each kind for the shared suite; one Docker image built per test session."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandboxes import Sandbox, SandboxLimits, make_sandbox

SMALL = SandboxLimits(memory_mb=256, pids=64, disk_mb=16, output_bytes=4_000, kill_grace_s=1.5)


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """Builds the image once (a no-op when it exists with the current helper)."""
    from sandboxes.image import build_image

    return build_image()


def _require(request: pytest.FixtureRequest, kind: str) -> None:
    if kind == "docker":
        request.getfixturevalue("needs_docker")
        request.getfixturevalue("sandbox_image")
    elif kind == "bubblewrap":
        request.getfixturevalue("needs_bwrap")


@pytest.fixture
def make_box(request: pytest.FixtureRequest) -> Callable[..., Sandbox]:
    """``make_box(kind, **limit_overrides)``: a fresh sandbox (skips when the kind is missing)."""

    def make(kind: str, **overrides: object) -> Sandbox:
        _require(request, kind)
        limits = SandboxLimits(**{**_fields(SMALL), **overrides})
        return make_sandbox(kind, limits, allow_local=True)

    return make


def _fields(limits: SandboxLimits) -> dict[str, object]:
    return {name: getattr(limits, name) for name in limits.__dataclass_fields__}
