"""Shared fixtures: small random gpt-oss checkpoints written once per test session (per worker)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Test modules import gptoss_helpers; this directory is not a package and pytest's importlib
# mode leaves sys.path alone, so make the helpers importable here, once.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

try:
    import torch
except ImportError:  # the engine extra is not installed: the test modules skip themselves
    pass
else:
    # Toy models gain nothing from intra-op threads, and under pytest-xdist (or any other load)
    # OpenMP workers spinning for the same two cores made these tests ~40x slower.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``checkpoints(name, layout)`` -> directory; both layouts share the seed, hence the numbers."""
    from gptoss_helpers import CONFIGS

    from agent.engine.gptoss import write_random_checkpoint

    made: dict[tuple[str, str], Path] = {}

    def get(name: str, layout: str = "hf") -> Path:
        key = (name, layout)
        if key not in made:
            out = tmp_path_factory.mktemp(f"{name}-{layout}")
            made[key] = write_random_checkpoint(out, CONFIGS[name], layout=layout, seed=7)  # type: ignore[arg-type]
        return made[key]

    return get
