"""``agent batch`` through a subprocess: plain progress lines, exit codes, and a ``kill -9``
in the middle of a batch followed by ``--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FINAL = "<|channel|>analysis<|message|>Working on it now.<|end|><|start|>assistant" \
        "<|channel|>final<|message|>done<|return|>"


def _env(tmp: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSS_AGENT_")}
    return {**clean, "OSS_AGENT_CONFIG": str(tmp / "none.toml"), "PYTHONPATH": str(ROOT),
            "NO_COLOR": "1", "COLUMNS": "200"}


def _batch(tmp: Path, n: int, *, delay: float, concurrency: int) -> Path:
    (tmp / "script.yaml").write_text(yaml.safe_dump({"completions": [FINAL],
                                                     "token_delay_s": delay}))
    tasks = [{"id": f"t{i:03d}", "prompt": f"task {i}", "expected": "done" if i % 4 else "no"}
             for i in range(n)]
    path = tmp / "tasks.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"engine": "scripted:script.yaml",
                                                 "concurrency": concurrency}, "tasks": tasks}))
    return path


def _agent(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=tmp, env=_env(tmp),
                          capture_output=True, text=True, timeout=120)


def test_batch_plain_output_summary_and_exit_codes(tmp_path: Path) -> None:
    tasks = _batch(tmp_path, 8, delay=0, concurrency=3)
    done = _agent(tmp_path, "batch", str(tasks), "--min-pass-rate", "0.5")
    assert done.returncode == 0, done.stderr
    assert "[8/8] " in done.stderr and " ok passed " in done.stderr  # not a terminal: lines
    assert "pass rate" in done.stderr and "75.0% (6/8)" in done.stderr
    records = [json.loads(line) for line in
               (tmp_path / "tasks.results.jsonl").read_text().splitlines()]
    assert len(records) == 8
    again = _agent(tmp_path, "batch", str(tasks))
    assert again.returncode == 2 and "already has results" in again.stderr
    strict = _agent(tmp_path, "batch", str(tasks), "--resume", "--min-pass-rate", "0.9",
                    "--json")
    assert strict.returncode == 1
    assert json.loads(strict.stdout)["pass_rate"] == 0.75
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  engine: scripted:script.yaml\ntasks:\n  - prompt: 3\n"
                   "    limits: {max_turns: zero}\n")
    broken = _agent(tmp_path, "batch", str(bad))
    assert broken.returncode == 2
    assert f"{bad}:5: tasks.0.limits.max_turns:" in broken.stderr
    assert f"{bad}:4: tasks.0.prompt:" in broken.stderr


def test_kill_9_mid_batch_then_resume(tmp_path: Path) -> None:
    n = 40
    tasks = _batch(tmp_path, n, delay=0.01, concurrency=4)
    results = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "agent", "batch", str(tasks), "-o",
                             str(results)], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if results.exists() and results.read_bytes().count(b"\n") >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    data = results.read_bytes()
    finished = data.count(b"\n")
    assert 6 <= finished < n, "the batch must be killed in the middle"
    if data.endswith(b"\n"):  # the kill landed between writes: tear the last line ourselves
        results.write_bytes(data[:-25])
        finished -= 1
    resumed = _agent(tmp_path, "batch", str(tasks), "-o", str(results), "--resume")
    assert resumed.returncode == 0, resumed.stderr  # every task answered (scores aside)
    assert "torn last line" in resumed.stderr
    assert f"resuming: {finished} of {n} tasks already done" in resumed.stderr
    lines = results.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]  # every line parses
    assert sorted(ids) == [f"t{i:03d}" for i in range(n)]  # none lost, none duplicated
