"""Settings precedence (flags > config file > env vars > defaults) and ``agent config``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import agent

from agent.errors import UserError
from agent.settings import resolve_settings


def test_precedence_flag_over_config_over_env(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('engine = "scripted:from-config.yaml"\ntools = ["python"]\n'
                      "[engine_options]\nmax_batch = 4\n")
    env = {"OSS_AGENT_ENGINE": "scripted:from-env.yaml", "OSS_AGENT_MAX_TURNS": "7",
           "OSS_AGENT_TOOLS": "browser, apply_patch"}
    got = resolve_settings({}, env=env, path=config)
    assert got.values.engine == "scripted:from-config.yaml"
    assert got.sources["engine"] == f"config:{config}"
    assert got.values.max_turns == 7 and got.sources["max_turns"] == "env:OSS_AGENT_MAX_TURNS"
    assert got.values.tools == ("python",)
    assert got.values.engine_options == {"max_batch": 4}
    assert got.sources["reasoning"] == "default"
    flagged = resolve_settings({"engine": "scripted:flag.yaml", "max_turns": None}, env=env,
                               path=config)
    assert flagged.values.engine == "scripted:flag.yaml" and flagged.sources["engine"] == "flag"
    assert flagged.values.max_turns == 7  # a flag left unset falls through
    env_only = resolve_settings({}, env=env, path=tmp_path / "absent.toml")
    assert env_only.values.tools == ("browser", "apply_patch")
    assert not env_only.config_found


def test_bad_settings_name_their_source(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("max_turns = 0\n")
    with pytest.raises(UserError, match=r"max_turns \(from config:.*\): Input should be"):
        resolve_settings({}, env={}, path=config)
    config.write_text("engin = 'x'\n")
    with pytest.raises(UserError, match="unknown setting.*engin"):
        resolve_settings({}, env={}, path=config)
    config.write_text("engine = \n")
    with pytest.raises(UserError, match="not valid TOML"):
        resolve_settings({}, env={}, path=config)
    with pytest.raises(UserError, match="OSS_AGENT_MAX_TURNS"):
        resolve_settings({}, env={"OSS_AGENT_MAX_TURNS": "many"}, path=tmp_path / "x.toml")


def test_agent_config_shows_sources(tmp_path: Path) -> None:
    config = tmp_path / "mine.toml"
    config.write_text('policy = "strict"\n')
    done = agent(tmp_path, "config", "--json", "--reasoning", "high",
                 OSS_AGENT_CONFIG=str(config), OSS_AGENT_ENGINE="scripted:x.yaml")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["config_file"] == str(config) and data["config_found"]
    assert data["settings"]["engine"] == "scripted:x.yaml"
    assert data["sources"] == {**data["sources"], "engine": "env:OSS_AGENT_ENGINE",
                               "policy": f"config:{config}", "reasoning": "flag",
                               "device": "default"}
    table = agent(tmp_path, "config", OSS_AGENT_CONFIG=str(config))
    assert "OSS_AGENT_ENGINE" in table.stdout and "strict" in table.stdout
