"""``agent batch tasks.yaml``: many tasks on one engine, results in resumable JSONL.

Exit codes: 0 every task ended with an answer (and the pass rate reached --min-pass-rate),
1 some task failed, timed out or ended without an answer (or the pass rate is too low),
2 usage/config error (the batch file's problems are listed with their lines), 130 interrupted
(finished tasks are in the results file; ``--resume`` runs the rest).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agent.batch import BatchRunner, ResultsFile, load_batch, read_results, summarize
from agent.batch.report import Summary
from agent.batch.tasks import Task
from agent.cli.common import add_agent_flags, open_engine, settings_from_args
from agent.engine.base import Engine


def register(sub: Any) -> None:
    p = sub.add_parser("batch", help="run the tasks of a YAML file concurrently",
                       description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, help="the batch file (YAML)")
    p.add_argument("-o", "--output", type=Path,
                   help="results JSONL (default: the batch file's name + .results.jsonl)")
    p.add_argument("--resume", action="store_true",
                   help="skip tasks already in the results file (repairs a torn last line)")
    p.add_argument("--overwrite", action="store_true", help="start the results file afresh")
    p.add_argument("--check", action="store_true", help="validate the batch file and exit")
    p.add_argument("--min-pass-rate", type=float, default=None, metavar="RATE",
                   help="exit 1 when fewer than RATE (0-1) of the scored tasks pass")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_agent_flags(p, batch=True)
    p.set_defaults(handler=handle)


class _Progress:
    """Live counts on a terminal; one plain line per finished task elsewhere."""

    def __init__(self, console: Console, total: int, skipped: int) -> None:
        self.console = console
        self.total = total
        self.live = console.is_terminal
        self.running = 0
        self.failed = 0
        self.done = skipped
        self.tokens = 0
        self.start = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"), TimeRemainingColumn(), console=console,
            transient=False)
        self.bar = self.progress.add_task("batch", total=total, completed=skipped, counts="")

    def _counts(self) -> str:
        rate = self.tokens / max(time.monotonic() - self.start, 1e-6)
        return (f"[cyan]{self.running} running[/] [red]{self.failed} failed[/] "
                f"{rate:,.0f} tok/s")

    def task_started(self, task: Task) -> None:
        self.running += 1
        if self.live:
            self.progress.update(self.bar, counts=self._counts())

    def task_finished(self, task: Task, record: dict[str, Any]) -> None:
        self.running -= 1
        self.done += 1
        self.failed += record["status"] != "ok"
        self.tokens += record["usage"]["completion_tokens"]
        if self.live:
            self.progress.update(self.bar, advance=1, counts=self._counts())
            return
        passed = {True: " passed", False: " FAILED"}.get(record["passed"], "")
        error = f" {record['error']}" if record["error"] else ""
        self.console.out(f"[{self.done}/{self.total}] {task.id} {record['status']}{passed} "
                         f"{record['timings']['duration_s']:.2f}s{error}", highlight=False)


def _table(summary: Summary, elapsed: float, ran: int) -> Table:
    t = Table(title="batch summary", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("tasks", f"{summary.total} ({ran} this run)")
    t.add_row("status", ", ".join(f"{k} {v}" for k, v in sorted(summary.statuses.items())))
    if summary.pass_rate is not None:
        t.add_row("pass rate", f"{summary.pass_rate:.1%} ({summary.passed}/{summary.scored})")
    tools = ", ".join(f"{k} {v}" + (f" ({summary.tool_errors[k]} failed)"
                                    if summary.tool_errors[k] else "")
                      for k, v in summary.tools.most_common()) or "-"
    t.add_row("tool calls", tools)
    t.add_row("tokens", f"{summary.prompt_tokens:,} prompt ({summary.reused_tokens:,} reused), "
              f"{summary.completion_tokens:,} completion")
    rate = ran / elapsed if elapsed else 0.0
    t.add_row("time", f"{elapsed:.2f} s wall, {rate:.1f} tasks/s; {summary.tool_time_s:.2f} s "
              "in tools")
    return t


async def _run(runner: BatchRunner, engine: Engine, progress: _Progress) -> None:
    try:
        if progress.live:
            with progress.progress:
                await runner.run()
        else:
            await runner.run()
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()


def handle(args: argparse.Namespace) -> int:
    err = Console(stderr=True, highlight=False)
    defaults, tasks = load_batch(args.file)
    if args.check:
        err.print(f"{args.file}: {len(tasks)} tasks, valid")
        return 0
    resolved = settings_from_args(args)
    flagged = {k for k, v in resolved.sources.items() if v == "flag"}
    settings = resolved.values
    engine_spec = settings.engine if "engine" in flagged else (defaults.engine or settings.engine)
    concurrency = settings.concurrency if "concurrency" in flagged else (
        defaults.concurrency or settings.concurrency)
    output = args.output or args.file.with_suffix(".results.jsonl")
    results = ResultsFile(output).open(resume=args.resume, overwrite=args.overwrite)
    try:
        engine = open_engine(settings.model_copy(update={"engine": engine_spec}))
        runner = BatchRunner(engine, tasks, results, concurrency=concurrency,
                             toolkit_options=settings.toolkit_options)
        pending = len(runner.pending())
        if results.repaired_bytes:
            err.print(f"[yellow]{output}: cut a torn last line ({results.repaired_bytes} bytes) "
                      "left by a crash; that task runs again[/]")
        if args.resume:
            err.print(f"resuming: {len(tasks) - pending} of {len(tasks)} tasks already done")
        progress = _Progress(err, len(tasks), len(tasks) - pending)
        runner.observer = progress
        start = time.monotonic()
        anyio.run(_run, runner, engine, progress)
        elapsed = time.monotonic() - start
    finally:
        results.close()
    summary = summarize(read_results(output), {t.id for t in tasks})
    if args.json:
        print(json.dumps({**summary.to_dict(), "results": str(output),
                          "elapsed_s": round(elapsed, 3)}))
    else:
        err.print(_table(summary, elapsed, runner.stats.finished))
        err.print(f"[dim]results: {output}[/]")
    low = (args.min_pass_rate is not None and summary.pass_rate is not None
           and summary.pass_rate < args.min_pass_rate)
    return 1 if summary.failed or low or summary.total < len(tasks) else 0
