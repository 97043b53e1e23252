"""A scripted run that uses python end to end: state kept across turns, files in the result."""

from __future__ import annotations

import pytest

from agent import Agent, ScriptedEngine, StopReason
from policies import Policy
from policies.config import SandboxPolicy
from toolkits.python import PythonToolkit

pytestmark = pytest.mark.anyio


def python(code: str) -> str:
    return f"<|channel|>analysis to=python code<|message|>{code}<|call|>"


@pytest.mark.parametrize("kind", ["bubblewrap", "local"])
async def test_scripted_run_with_python(tmp_path, need_kind, kind: str) -> None:
    need_kind(kind)
    pol = Policy(sandbox=SandboxPolicy(kind=kind, allow_local=True))
    engine = ScriptedEngine([
        python("import statistics\nvalues = [3, 1, 4, 1, 5]"),
        python("open('/mnt/data/mean.txt' if "
               "__import__('os').path.isdir('/mnt/data') else 'mean.txt', 'w')"
               ".write(str(statistics.mean(values)))\nstatistics.median(values)"),
        "<|channel|>final<|message|>The median is 3.<|return|>",
    ])
    agent = Agent(engine, [PythonToolkit()], policy=pol, files_root=tmp_path)
    result = await agent.run("median of 3 1 4 1 5, and save the mean")
    assert result.stop_reason is StopReason.FINAL
    assert [r.output for r in result.tool_calls] == ["(no output)", "3"]
    assert [p.name for p in result.files] == ["mean.txt"]
    assert (result.files[0]).read_text() == "2.8"


async def test_warm_pool_inside_an_entered_agent(tmp_path) -> None:
    """The pool's background task group is started and closed by the task that entered the
    agent, however many runs (sequential or concurrent) went in between."""
    import anyio

    pol = Policy(sandbox=SandboxPolicy(kind="local", allow_local=True))
    engine = ScriptedEngine([python("6 * 7"), "<|channel|>final<|message|>42<|return|>"])
    toolkit = PythonToolkit(policy=pol, pool_size=1)
    async with Agent(engine, [toolkit], policy=pol, files_root=tmp_path) as agent:
        pool = toolkit.pool
        if pool is not None:  # a loaded CI machine may not have started it before the first call
            await pool.wait_warm()
        first = await agent.run("x")
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(agent.run, "y")
    assert first.tool_calls[0].output == "42"
    assert pool is not None and pool.hits >= 1  # the first run got the warm interpreter
