"""Run the ``agent`` command in a subprocess, with a clean environment and config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def env(tmp: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSS_AGENT_")}
    clean.update({"OSS_AGENT_CONFIG": str(tmp / "no-config.toml"), "NO_COLOR": "1",
                  "PYTHONPATH": str(ROOT), "COLUMNS": "200", **extra})
    return clean


def agent(tmp: Path, *args: str, input: str | None = None, timeout: float = 60,
          **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, cwd=tmp, env=env(tmp, **extra), input=input,
                          timeout=timeout)


def script(tmp: Path, completions: list[str], name: str = "script.yaml",
           **options: object) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump({"completions": completions, **options}))
    return path


FINAL = "<|channel|>analysis<|message|>Thinking.<|end|><|start|>assistant<|channel|>final" \
        "<|message|>The answer is 42.<|return|>"
CALL = '<|channel|>commentary to=functions.echo <|constrain|>json<|message|>{"text": "hi"}<|call|>'
