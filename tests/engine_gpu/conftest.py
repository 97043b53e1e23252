"""GPU-only tests of the gpt-oss Triton kernels and CUDA graphs.

They skip where there is no CUDA device (CI has none); with ``OSS_AGENT_REQUIRE_GPU=1`` (set on
the GPU machine) a missing GPU or Triton fails instead, so a broken setup cannot pass silently.
"""

from __future__ import annotations

import os

import pytest

REQUIRE = os.environ.get("OSS_AGENT_REQUIRE_GPU") == "1"


@pytest.fixture
def cuda() -> None:
    """Skip (fail under ``OSS_AGENT_REQUIRE_GPU=1``) unless CUDA and Triton are usable."""
    problem = None
    try:
        import torch
    except ImportError:
        problem = "torch is not installed"
    else:
        if not torch.cuda.is_available():
            problem = "no CUDA device"
        else:
            try:
                import triton  # noqa: F401
            except ImportError:
                problem = "triton is not installed"
    if problem is None:
        return
    if REQUIRE:
        pytest.fail(f"{problem} (OSS_AGENT_REQUIRE_GPU=1)", pytrace=False)
    pytest.skip(problem)
