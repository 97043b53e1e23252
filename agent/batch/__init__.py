"""Batch runs: many tasks from a YAML file on one shared engine, results in resumable JSONL.

    defaults, tasks = load_batch("tasks.yaml")
    with ResultsFile(Path("results.jsonl")).open(resume=True) as results:
        stats = await BatchRunner(engine, tasks, results, concurrency=50).run()
"""

from __future__ import annotations

from agent.batch.report import Summary as Summary
from agent.batch.report import summarize as summarize
from agent.batch.results import ResultsFile as ResultsFile
from agent.batch.results import read_results as read_results
from agent.batch.runner import BatchRunner as BatchRunner
from agent.batch.runner import BatchStats as BatchStats
from agent.batch.schema import load_batch as load_batch
from agent.batch.tasks import BatchFileError as BatchFileError
from agent.batch.tasks import Task as Task
from agent.batch.tasks import TaskConfig as TaskConfig
