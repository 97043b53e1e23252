"""A tiny random gpt-oss checkpoint, written once per test session (per xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from agent.engine.gptoss import write_random_checkpoint
    from agent.engine.gptoss.random_checkpoint import preset

    return write_random_checkpoint(tmp_path_factory.mktemp("gpt-oss-tiny"), preset("tiny"), seed=3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
