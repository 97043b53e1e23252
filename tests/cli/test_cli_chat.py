"""``agent chat`` in a real terminal (tmux): turns, prefix reuse, Ctrl-C stops only the turn,
/tools, /save and /reset."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import env, script

SLOW = "<|channel|>analysis<|message|>" + "slow " * 200 + "<|end|><|start|>assistant" \
       "<|channel|>final<|message|>never shown<|return|>"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def session(tmp_path: Path) -> Iterator[str]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    name = f"chat-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def _wait_for(name: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", name, "-S", "-200")
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared on the screen:\n{screen}")


def test_chat_in_tmux(tmp_path: Path, session: str) -> None:
    tools = tmp_path / "chattools.py"
    tools.write_text("from agent import tool\n@tool\ndef shout(text: str) -> str:\n"
                     "    '''Shout.'''\n    return text.upper()\n")
    spec = script(tmp_path, [
        "<|channel|>analysis<|message|>A greeting.<|end|><|start|>assistant<|channel|>final"
        "<|message|>Hello there!<|return|>",
        SLOW,
        "<|channel|>final<|message|>Third answer.<|return|>",
    ], token_delay_s=0.02)
    variables = " ".join(f"{k}={shlex.quote(v)}" for k, v in
                         env(tmp_path, PYTHONPATH=f"{tmp_path}:{env(tmp_path)['PYTHONPATH']}")
                         .items() if k.startswith(("OSS_", "PYTHON", "NO_COLOR", "PATH", "HOME")))
    command = (f"cd {tmp_path} && env {variables} {shlex.quote(__import__('sys').executable)} "
               f"-m agent chat --engine scripted:{spec} --tools chattools:shout; "
               "echo CHAT-EXIT=$?; sleep 60")
    _tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", command)
    _wait_for(session, "you>")
    _tmux("send-keys", "-t", session, "hi", "Enter")
    screen = _wait_for(session, "Hello there!")
    assert "A greeting." in screen
    _tmux("send-keys", "-t", session, "tell me more", "Enter")
    _wait_for(session, "slow slow slow")
    _tmux("send-keys", "-t", session, "C-c")
    screen = _wait_for(session, "turn stopped")
    assert "never shown" not in screen
    _tmux("send-keys", "-t", session, "again", "Enter")
    screen = _wait_for(session, "Third answer.")
    usage = [line for line in screen.splitlines() if line.startswith("final ·")][-1]
    assert "reused" in usage and "(0 reused" not in usage  # the conversation's prefix is reused
    _tmux("send-keys", "-t", session, "/tools", "Enter")
    _wait_for(session, "functions: shout")
    saved = tmp_path / "chat.json"
    _tmux("send-keys", "-t", session, f"/save {saved}", "Enter")
    _wait_for(session, "saved ")
    data = json.loads(saved.read_text())
    texts = [m["content"][0].get("text") for m in data["conversation"]["messages"]
             if m["role"] == "user"]
    assert texts == ["hi", "again"]  # the stopped turn was dropped
    assert len(data["completions"]) == 2
    _tmux("send-keys", "-t", session, "/reset", "Enter")
    _wait_for(session, "conversation reset")
    _tmux("send-keys", "-t", session, "C-d")
    _wait_for(session, "CHAT-EXIT=0")
