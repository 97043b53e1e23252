"""Fixtures for the browser tests: the loopback test site, served once per test process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the site, fakes and helpers live here

from browser_site import serve_site  # noqa: E402


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    with serve_site() as base:
        yield base
