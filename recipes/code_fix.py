"""A code-fix agent: runs the tests with python, fixes the bug with apply_patch, reruns them.

    python recipes/code_fix.py                       # scripted engine
    agent run recipes/code_fix.py --engine local:/models/gpt-oss-20b

The project lives in the run's files folder: python sees it as ``/mnt/data``, apply_patch edits
it by relative path. The recipe puts a small buggy project there before the model starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from agent import Agent, Engine
from policies import Policy
from toolkits.apply_patch import ApplyPatchToolkit
from toolkits.python import PythonToolkit

TASK = "The tests in /mnt/data/test_mathx.py fail. Find the bug, fix it with apply_patch, and " \
       "show that the tests pass."

PROJECT = {
    "mathx.py": "def mean(values):\n    return sum(values) / (len(values) - 1)\n",
    "test_mathx.py": "from mathx import mean\n\n\ndef test_mean():\n"
                     "    assert mean([1, 2, 3]) == 2\n",
}
RUN_TESTS = """import subprocess, sys
r = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '/mnt/data'); "
    "import test_mathx; test_mathx.test_mean(); print('1 passed')"],
    capture_output=True, text=True, cwd="/mnt/data")
print(r.stdout or r.stderr.strip().splitlines()[-1])"""


def build_agent(engine: Engine) -> Agent:
    kind = os.environ.get("OSS_AGENT_SANDBOX") or ("bubblewrap" if shutil.which("bwrap")
                                                   else "docker")
    # Every run starts with the buggy project in its files folder (what /mnt/data shows).
    return Agent(engine, [ApplyPatchToolkit(), PythonToolkit(kind=kind)], files=PROJECT,
                 policy=Policy.load("default"),
                 files_root=Path(tempfile.gettempdir()) / "oss-agent-code-fix")


PATCH = """*** Begin Patch
*** Update File: mathx.py
@@
 def mean(values):
-    return sum(values) / (len(values) - 1)
+    return sum(values) / len(values)
*** End Patch"""

SCRIPT = [
    f"<|channel|>analysis to=python code<|message|>{RUN_TESTS}<|call|>",
    "<|channel|>analysis<|message|>mean divides by len - 1. Patch it.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.apply_patch code<|message|>"
    f"{PATCH}<|call|>",
    f"<|channel|>analysis to=python code<|message|>{RUN_TESTS}<|call|>",
    "<|channel|>final<|message|>`mean` divided by `len(values) - 1`; it now divides by "
    "`len(values)` and the test passes.<|return|>",
]

if __name__ == "__main__":
    from agent.cli.run import recipe_main

    raise SystemExit(recipe_main(__file__))
