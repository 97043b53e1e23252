"""Fixtures for the python toolkit: a run context and the sandbox image (built once)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from policies import Policy, RunPolicy
from toolkits.base import RunContext, ToolCall


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    from sandboxes.image import build_image

    return build_image()


@pytest.fixture
def need_kind(request: pytest.FixtureRequest) -> Callable[[str], None]:
    def need(kind: str) -> None:
        if kind == "docker":
            request.getfixturevalue("needs_docker")
            request.getfixturevalue("sandbox_image")
        elif kind == "bubblewrap":
            request.getfixturevalue("needs_bwrap")

    return need


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., RunContext]:
    def make(policy: Policy, run_id: str = "run-1") -> RunContext:
        files = tmp_path / run_id
        files.mkdir(exist_ok=True)
        return RunContext(run_id=run_id, files_dir=files, policy=RunPolicy(policy))

    return make


def code(text: str) -> ToolCall:
    return ToolCall(recipient="python", namespace="python", method=None, arguments=text)
