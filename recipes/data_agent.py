"""A data agent: analyses data with python and returns the files it writes to ``/mnt/data``.

    python recipes/data_agent.py                     # scripted engine
    agent run recipes/data_agent.py --engine local:/models/gpt-oss-20b

Code runs in a sandbox (bubblewrap when installed, else Docker; ``OSS_AGENT_SANDBOX`` picks);
files written under ``/mnt/data`` come back in ``result.files`` (``agent run`` lists them).
"""

from __future__ import annotations

import os
import shutil

from agent import Agent, Engine
from policies import Policy
from toolkits.python import PythonToolkit

TASK = ("Make a small table of monthly sales (Jan-Jun: 120, 135, 150, 110, 170, 190), find the "
        "best month and the average, and save the table with a total row as /mnt/data/sales.csv.")


def sandbox_kind() -> str:
    return os.environ.get("OSS_AGENT_SANDBOX") or ("bubblewrap" if shutil.which("bwrap")
                                                   else "docker")


def build_agent(engine: Engine) -> Agent:
    return Agent(engine, [PythonToolkit(kind=sandbox_kind())], policy=Policy.load("default"),
                 instructions="Use python for every computation. Save requested files under "
                              "/mnt/data and name them in your answer.")


_CODE = """import csv
months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
sales = [120, 135, 150, 110, 170, 190]
best = max(zip(sales, months))
avg = sum(sales) / len(sales)
with open("/mnt/data/sales.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["month", "sales"])
    w.writerows(zip(months, sales))
    w.writerow(["total", sum(sales)])
print(best, round(avg, 2))"""

SCRIPT = [
    "<|channel|>analysis<|message|>Compute it in python and write the CSV.<|end|>"
    f"<|start|>assistant<|channel|>analysis to=python code<|message|>{_CODE}<|call|>",
    "<|channel|>final<|message|>June was the best month (190); the average is 145.83 per "
    "month. The table with its total row (875) is in `/mnt/data/sales.csv`.<|return|>",
]

if __name__ == "__main__":
    from agent.cli.run import recipe_main

    raise SystemExit(recipe_main(__file__))
