"""Shared test switches.

Tests that need a real component (Docker engine, bubblewrap, Chromium, a GPU) call
:func:`require`. On a developer's laptop a missing component skips the test; under CI
(``CI=true``) or with ``OSS_AGENT_REQUIRE_COMPONENTS=1`` the same skip is a failure, so a
broken install step can never hide behind a green run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

STRICT = os.environ.get("CI", "").lower() == "true" or os.environ.get(
    "OSS_AGENT_REQUIRE_COMPONENTS"
) == "1"


def require(ok: bool, component: str, hint: str = "") -> None:
    """Skip (or, under CI, fail) the calling test unless ``ok``."""
    if ok:
        return
    message = f"{component} is not available" + (f": {hint}" if hint else "")
    if STRICT:
        pytest.fail(f"{message} (CI requires every real component)", pytrace=False)
    pytest.skip(message)


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(
            ["docker", "info"], capture_output=True, timeout=20
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _bwrap_ok() -> bool:
    if shutil.which("bwrap") is None:
        return False
    try:
        return subprocess.run(
            ["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"],
            capture_output=True, timeout=20,
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _chromium_ok() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return os.path.exists(os.environ.get("OSS_AGENT_CHROMIUM", "/usr/bin/chromium"))


_CHECKS: dict[str, Callable[[], bool]] = {
    "docker": _docker_ok,
    "bwrap": _bwrap_ok,
    "chromium": _chromium_ok,
}
_cache: dict[str, bool] = {}


def have(component: str) -> bool:
    if component not in _cache:
        _cache[component] = _CHECKS[component]()
    return _cache[component]


@pytest.fixture
def needs_docker() -> None:
    require(have("docker"), "a Docker engine", "install docker.io and start dockerd")


@pytest.fixture
def needs_bwrap() -> None:
    require(have("bwrap"), "bubblewrap", "apt-get install bubblewrap")


@pytest.fixture
def needs_chromium() -> None:
    require(have("chromium"), "Chromium + Playwright", "apt-get install chromium; pip install playwright")


# Skips raised by other means (``pytest.importorskip`` for torch/transformers, a missing tmux) are
# failures under CI too: a dependency the setup script should have installed is a broken setup.
_MISSING = ("could not import", "is not installed", "is not available")


def _missing_component(report: pytest.CollectReport | pytest.TestReport) -> bool:
    if not (STRICT and report.skipped):
        return False
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return any(m in reason for m in _MISSING)


def _as_failure(report: pytest.CollectReport | pytest.TestReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{reason} (CI requires every real component and dependency)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if _missing_component(report):
        _as_failure(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if _missing_component(report):
        _as_failure(report)
