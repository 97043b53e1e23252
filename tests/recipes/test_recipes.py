"""Every recipe runs on the scripted engine, as ``python recipes/x.py`` and as ``agent run``;
in-process runs check what each recipe promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from agent.cli.common import load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"


def _env(tmp: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSS_AGENT_")}
    return {**clean, "OSS_AGENT_CONFIG": str(tmp / "none.toml"), "PYTHONPATH": str(ROOT),
            "NO_COLOR": "1"}


def _run(recipe: str, tmp: Path):  # type: ignore[no-untyped-def]
    loaded = load_recipe(RECIPES / recipe)
    agent = loaded.build(loaded.scripted_engine())
    return anyio.run(agent.run, loaded.task)


def test_custom_tools_both_ways(tmp_path: Path) -> None:
    direct = subprocess.run([sys.executable, str(RECIPES / "custom_tools.py"), "-q"],
                            capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert direct.returncode == 0, direct.stderr
    assert "12 umbrellas" in direct.stdout
    via_cli = subprocess.run([sys.executable, "-m", "agent", "run",
                              str(RECIPES / "custom_tools.py")], capture_output=True, text=True,
                             env=_env(tmp_path), timeout=120, cwd=tmp_path)
    assert via_cli.returncode == 0, via_cli.stderr
    assert "engine: scripted" in via_cli.stderr  # said plainly
    assert "inventory.count" in via_cli.stderr and "functions.get_weather" in via_cli.stderr


def test_custom_tools_result() -> None:
    result = _run("custom_tools.py", Path())
    assert [c.call.recipient for c in result.tool_calls] == ["inventory.count",
                                                             "functions.get_weather"]
    assert [c.output for c in result.tool_calls][0] == "12"


def test_research_cites_with_links(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(RECIPES / "research.py")], capture_output=True,
                          text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(https://openai.com/index/introducing-gpt-oss/)" in done.stdout  # clickable
    assert "[1] Introducing gpt-oss - https://openai.com/index/introducing-gpt-oss/" in done.stdout
    result = _run("research.py", tmp_path)
    assert [c.call.recipient for c in result.tool_calls] == ["browser.search", "browser.open"]


def test_streaming_recipe(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(RECIPES / "streaming.py")], capture_output=True,
                          text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[tool] functions.multiply" in done.stdout and "[answer] 17 × 23 = 391." in done.stdout


def test_data_agent_returns_files(needs_bwrap: None, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_AGENT_SANDBOX", "bubblewrap")
    result = _run("data_agent.py", tmp_path)
    assert result.final_answer and "June" in result.final_answer
    assert [p.name for p in result.files] == ["sales.csv"]
    assert result.files[0].read_text().splitlines()[-1] == "total,875"
    assert result.tool_calls[0].output.strip() == "(190, 'Jun') 145.83"


def test_code_fix_patches_the_bug(needs_bwrap: None, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_AGENT_SANDBOX", "bubblewrap")
    result = _run("code_fix.py", tmp_path)
    first, patch, _ = result.tool_calls
    assert "AssertionError" in first.output and patch.outcome.value == "ok"
    fixed = next(p for p in result.files if p.name == "mathx.py").read_text()
    assert "/ len(values)\n" in fixed


def test_code_fix_tests_pass_after_the_patch(needs_bwrap: None, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_AGENT_SANDBOX", "bubblewrap")
    result = _run("code_fix.py", tmp_path)
    assert result.tool_calls[-1].output.strip() == "1 passed"
