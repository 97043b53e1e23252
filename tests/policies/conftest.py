"""Fixtures for the policy tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs


@pytest.fixture
def policy_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog line (info included) emitted while the test runs."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)
