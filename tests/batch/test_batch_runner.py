"""The batch runner on a shared scripted engine: concurrency, isolation of failures, scoring,
and the results file's repair and resume."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from agent import FunctionEngine, ScriptedEngine, tool
from agent.batch import BatchRunner, ResultsFile, read_results, summarize
from agent.batch.tasks import Task, TaskConfig
from agent.errors import EngineError, UserError
from agent.state import RunLimits

CALL = '<|channel|>commentary to=functions.slow <|constrain|>json<|message|>{"s": 0}<|call|>'
FINAL = "<|channel|>final<|message|>done<|return|>"


@tool
async def slow(s: float) -> str:
    """Sleeps s seconds."""
    await anyio.sleep(s)
    return "slept"


def _config(**limits: object) -> TaskConfig:
    return TaskConfig((f"{__name__}:slow",), None, RunLimits(**limits), None, "low", 1.0)


def _task(i: int | str, *, expected: list[str] | None = None, timeout_s: float | None = None,
          check: object = None, config: TaskConfig | None = None) -> Task:
    return Task(str(i), f"task {i}", config or _config(), expected, "exact", check,  # type: ignore[arg-type]
                timeout_s, "test")


@pytest.mark.anyio
async def test_200_tasks_at_concurrency_50(tmp_path: Path) -> None:
    engine = ScriptedEngine([CALL, FINAL])
    tasks = [_task(i, expected=["done"] if i % 2 else ["other"]) for i in range(200)]
    with ResultsFile(tmp_path / "r.jsonl").open() as results:
        runner = BatchRunner(engine, tasks, results, concurrency=50)
        stats = await runner.run()
    assert stats.finished == 200 and stats.statuses == {"ok": 200}
    records = read_results(tmp_path / "r.jsonl")
    assert sorted(r["id"] for r in records) == sorted(str(i) for i in range(200))
    summary = summarize(records)
    assert summary.pass_rate == 0.5 and summary.tools == {"functions.slow": 200}
    one = records[0]
    assert one["final_answer"] == "done" and one["stop_reason"] == "final"
    assert one["usage"]["turns"] == 2 and one["usage"]["completion_tokens"] > 0
    assert one["messages"][-1]["channel"] == "final" and one["tool_calls"][0]["outcome"] == "ok"
    assert set(one["timings"]) == {"queued_s", "duration_s", "tool_time_s"}


@pytest.mark.anyio
async def test_failures_and_timeouts_never_stop_the_others(tmp_path: Path) -> None:
    def complete(prompt: str) -> str:
        if "task boom" in prompt:
            raise EngineError("the engine fell over")
        if "task hang" in prompt and "slept" not in prompt:
            return CALL.replace('"s": 0', '"s": 30')
        return FINAL

    def bad_check(result: object, task: Task) -> bool:
        raise ValueError("check is broken")

    tasks = [_task("boom"), _task("hang", timeout_s=0.5), _task("fine", expected=["done"]),
             _task("checked", check=bad_check), _task("limited", config=_config(max_turns=1))]
    tasks.append(_task("limited2", config=_config(max_turns=1)))
    with ResultsFile(tmp_path / "r.jsonl").open() as results:
        await BatchRunner(FunctionEngine(complete), tasks, results, concurrency=3).run()
    by_id = {r["id"]: r for r in read_results(tmp_path / "r.jsonl")}
    assert by_id["boom"]["status"] == "error"
    assert by_id["boom"]["error"] == "EngineError: the engine fell over"
    assert by_id["hang"]["status"] == "timeout" and "0.5 s" in by_id["hang"]["error"]
    assert by_id["fine"]["status"] == "ok" and by_id["fine"]["passed"] is True
    assert by_id["checked"]["status"] == "error" and by_id["checked"]["passed"] is False
    assert "check is broken" in by_id["checked"]["error"]
    assert by_id["checked"]["final_answer"] == "done"  # the run itself is kept
    assert by_id["limited"]["status"] == "ok"  # FINAL on the first turn
    assert summarize(by_id.values()).failed == 3


def test_results_file_repairs_a_torn_line_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ResultsFile(path).open() as results:
        for i in range(3):
            results.append({"id": f"t{i}", "status": "ok", "text": "é" * 50})
    data = path.read_bytes()
    path.write_bytes(data[:-17])  # a crash in the middle of the last line
    with pytest.raises(UserError, match="already has results"):
        ResultsFile(path).open()
    reopened = ResultsFile(path).open(resume=True)
    assert sorted(reopened.records) == ["t0", "t1"] and reopened.repaired_bytes > 0
    reopened.append({"id": "t2", "status": "ok"})
    reopened.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["t0", "t1", "t2"]
    path.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(UserError, match=r"r.jsonl:2: not a JSON line"):
        ResultsFile(path).open(resume=True)
    fresh = ResultsFile(path).open(overwrite=True)
    fresh.close()
    assert path.read_text() == ""


@pytest.mark.anyio
async def test_resume_skips_finished_tasks(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    tasks = [_task(i) for i in range(10)]
    with ResultsFile(path).open() as results:
        await BatchRunner(ScriptedEngine([CALL, FINAL]), tasks[:4], results).run()
    with ResultsFile(path).open(resume=True) as results:
        runner = BatchRunner(ScriptedEngine([CALL, FINAL]), tasks, results, concurrency=4)
        assert len(runner.pending()) == 6
        stats = await runner.run()
    assert stats.finished == 6 and stats.skipped == 4
    ids = [r["id"] for r in read_results(path)]
    assert sorted(ids) == sorted(str(i) for i in range(10))  # each exactly once
