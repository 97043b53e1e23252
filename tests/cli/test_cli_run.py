"""``agent run`` end to end, through a subprocess: output, exit codes, JSON, transcripts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog
from cli_helpers import CALL, FINAL, agent, env, script


def test_run_streams_analysis_and_prints_answer(tmp_path: Path) -> None:
    spec = f"scripted:{script(tmp_path, [FINAL])}"
    done = agent(tmp_path, "run", "What is the answer?", "--engine", spec)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "The answer is 42."
    assert "Thinking." in done.stderr  # analysis goes to the live stream
    assert "final · 1 turns" in done.stderr  # usage line


def test_run_without_answer_exits_1(tmp_path: Path) -> None:
    tools = tmp_path / "mytools.py"
    tools.write_text("from agent import tool\n@tool\ndef echo(text: str) -> str:\n"
                     "    '''Echo.'''\n    return text\n")
    spec = f"scripted:{script(tmp_path, [CALL, CALL])}"
    done = agent(tmp_path, "run", "loop", "--engine", spec, "--tools", "mytools:echo",
                 "--max-turns", "2", PYTHONPATH=f"{tmp_path}:{Path.cwd()}")
    assert done.returncode == 1, done.stderr
    assert "no final answer (max_turns)" in done.stderr
    assert "→ functions.echo" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["run", "task"], "no engine configured"),
    (["run", "task", "--engine", "warp:9"], "unknown kind 'warp'"),
    (["run", "task", "--engine", "local:/nonexistent"], "not a checkpoint folder"),
    (["run", "task", "--engine", "scripted:missing.yaml"], "cannot read"),
    (["run", "task", "--engine", "vllm:some/model"], "vllm"),
    (["run", "task", "--engine", "scripted:script.yaml", "--tools", "teleport"],
     "unknown toolkit 'teleport'"),
    (["run", "task", "--engine", "scripted:script.yaml", "--policy", "nope"], "nope"),
])
def test_config_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str], args: list[str],
                              message: str) -> None:
    from agent.cli import main

    script(tmp_path, [FINAL])
    monkeypatch.chdir(tmp_path)
    for key, value in env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OSS_AGENT_ENGINE", raising=False)
    try:
        assert main(args) == 2
    finally:  # main() pointed structlog at this test's captured stderr, closed after it
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert err.startswith("agent: error:") and message in err


def test_engine_failure_exits_3(tmp_path: Path) -> None:
    tools = tmp_path / "mytools.py"
    tools.write_text("from agent import tool\n@tool\ndef echo(text: str) -> str:\n"
                     "    '''Echo.'''\n    return text\n")
    spec = f"scripted:{script(tmp_path, [CALL])}"  # the second turn has no completion
    done = agent(tmp_path, "run", "task", "--engine", spec, "--tools", "mytools:echo",
                 PYTHONPATH=f"{tmp_path}:{Path.cwd()}")
    assert done.returncode == 3, done.stderr
    assert "run failed" in done.stderr


def test_json_and_transcript_replay(tmp_path: Path) -> None:
    spec = f"scripted:{script(tmp_path, [FINAL])}"
    saved = tmp_path / "run.json"
    done = agent(tmp_path, "run", "Q?", "--engine", spec, "--json", "--transcript", str(saved))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["final_answer"] == "The answer is 42." and result["stop_reason"] == "final"
    data = json.loads(saved.read_text())
    assert data["completions"] == [FINAL]
    assert [e["kind"] for e in data["events"]][-1] == "finished"
    assert data["conversation"]["messages"][-1]["channel"] == "final"
    replay = agent(tmp_path, "run", "Q?", "--engine", f"scripted:{saved}", "-q")
    assert replay.returncode == 0 and replay.stdout.strip() == "The answer is 42."


def test_stdin_task_and_quiet(tmp_path: Path) -> None:
    spec = f"scripted:{script(tmp_path, [FINAL])}"
    done = agent(tmp_path, "run", "-", "--engine", spec, "-q", input="from stdin\n")
    assert done.returncode == 0 and done.stdout.strip() == "The answer is 42."
    assert done.stderr == ""


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    spec = f"scripted:{script(tmp_path, [FINAL * 20], token_delay_s=0.05)}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "slow", "--engine", spec], cwd=tmp_path,
        env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # test runners may ignore SIGINT; a user's shell does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 60
    while "Thinking" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read(1)  # wait until the run streams
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert "interrupted" in proc.stderr.read()
