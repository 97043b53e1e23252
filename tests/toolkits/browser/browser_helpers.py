"""Helpers for the browser tests: run contexts with a loopback-friendly policy, tool calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policies.config import BrowserPolicy, Budgets, Policy
from policies.run import RunPolicy
from toolkits.base import RunContext, ToolCall


def make_ctx(
    tmp_path: Path, run_id: str = "run-1", budgets: Budgets | None = None, **browser: Any
) -> RunContext:
    """A run context whose browser policy allows the loopback site (127.0.0.1 only)."""
    settings: dict[str, Any] = {"allow_private": ["127.0.0.1"], "page_timeout_s": 3.0}
    settings.update(browser)
    policy = Policy(browser=BrowserPolicy(**settings), budgets=budgets or Budgets())
    return RunContext(run_id, tmp_path, RunPolicy(policy))


def call(method: str, **args: object) -> ToolCall:
    return ToolCall(
        recipient=f"browser.{method}", namespace="browser", method=method,
        arguments=json.dumps(args),
    )
