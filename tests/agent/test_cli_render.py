"""`agent --version`, `agent --help` and `agent render` through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai_harmony as oh

from agent.harmony import HarmonyCodec


def agent(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_version_and_help() -> None:
    assert agent("--version").stdout.startswith("oss-agent ")
    out = agent("--help")
    assert out.returncode == 0 and "render" in out.stdout


def test_render_from_flags_with_tokens() -> None:
    out = agent("render", "--user", "What is 2+2?", "--python", "--reasoning", "high",
                "--date", "2026-01-02", "--tokens")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    tokens = json.loads(lines[-1])
    text = HarmonyCodec().decode(tokens)
    assert "Reasoning: high" in text and "## python" in text
    assert text.endswith("<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant")
    assert f"-- {len(tokens)} tokens (completion)" in out.stdout


def test_render_conversation_json_from_file_and_stdin(tmp_path: Path) -> None:
    conv = oh.Conversation.from_messages([
        oh.Message.from_role_and_content(oh.Role.USER, "hi"),
        oh.Message.from_role_and_content(oh.Role.ASSISTANT, "hello").with_channel("final"),
    ])
    path = tmp_path / "conv.json"
    path.write_text(conv.to_json())
    whole = agent("render", str(path), "--mode", "training")
    assert whole.stdout.startswith(
        "<|start|>user<|message|>hi<|end|><|start|>assistant<|channel|>final<|message|>hello"
        "<|return|>")
    piped = agent("render", "-", "--mode", "conversation", stdin=conv.to_json())
    assert "hello<|end|>" in piped.stdout


def test_render_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    out = agent("render", "-", stdin="{not json")
    assert out.returncode == 2 and "not a Harmony conversation" in out.stderr
    missing = agent("render", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad_fn = agent("render", "--function", "[1]")
    assert bad_fn.returncode == 2 and "--function" in bad_fn.stderr
