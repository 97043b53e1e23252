"""The python toolkit through Toolkit.session(ctx).call(...), on real sandboxes."""

from __future__ import annotations

import pytest
from openai_harmony import ToolNamespaceConfig

from agent.errors import PolicyDenied
from policies import Policy
from policies.config import Budgets, SandboxPolicy
from toolkits.base import ToolCall
from toolkits.python import PythonToolkit

pytestmark = pytest.mark.anyio
ISOLATED = ["docker", "bubblewrap"]


def code(text: str) -> ToolCall:
    return ToolCall(recipient="python", namespace="python", method=None, arguments=text)


def policy(kind: str = "local", **sandbox: object) -> Policy:
    return Policy(sandbox=SandboxPolicy(kind=kind, allow_local=True, **sandbox))


def test_namespace_states_the_real_timeout_and_network() -> None:
    stock = ToolNamespaceConfig.python().description
    off = PythonToolkit(policy=Policy(sandbox=SandboxPolicy(call_timeout_s=30))).namespace()
    assert (off.name, off.tools, off.placement) == ("python", (), "system")
    assert off.description == stock.replace("120.0", "30.0").replace(
        "UNKNOWN. Depends on the cluster.", "disabled.")
    on = PythonToolkit(policy=Policy(sandbox=SandboxPolicy(network=True))).namespace()
    assert on.description is not None
    assert on.description.endswith("Internet access for this session is enabled.")


async def test_local_needs_the_explicit_opt_in(make_ctx) -> None:
    from agent.errors import UserError

    closed = Policy(sandbox=SandboxPolicy(kind="local"))
    async with PythonToolkit(policy=closed) as python:
        async with python.session(make_ctx(closed)) as session:
            with pytest.raises(UserError, match="allow_local"):
                await session.call(code("1"))


@pytest.mark.parametrize("kind", [*ISOLATED, "local"])
async def test_a_run_keeps_state_and_gets_its_files(make_ctx, need_kind, kind: str) -> None:
    need_kind(kind)
    pol = policy(kind)
    ctx = make_ctx(pol)
    (ctx.files_dir / "input.txt").write_text("from the user")
    async with PythonToolkit(policy=pol) as python, python.session(ctx) as session:
        first = await session.call(code("import os\ndata = open('input.txt').read()\n"
                                        "print(len(data))\ndata.upper()"))
        assert first.text == "13\n'FROM THE USER'" and not first.is_error
        wrote = await session.call(code("open('report.md', 'w').write(data + '!')"))
        assert wrote.text == "14"
        assert (ctx.files_dir / "report.md").read_text() == "from the user!"
        assert wrote.metadata["files_changed"] == [str(ctx.files_dir / "report.md")]
        assert str(ctx.files_dir / "report.md") in wrote.metadata["files"]
        failed = await session.call(code("undefined_name"))
        assert failed.is_error and "NameError" in failed.text
        assert failed.text.startswith("Traceback") and "interpreter" not in failed.text


async def test_timeout_and_crash_messages(make_ctx) -> None:
    pol = Policy(sandbox=SandboxPolicy(kind="local", allow_local=True, call_timeout_s=0.5))
    ctx = make_ctx(pol)
    async with PythonToolkit(policy=pol) as python, python.session(ctx) as session:
        await session.call(code("x = 1"))
        slow = await session.call(code("import time\ntime.sleep(5)"))
        assert slow.is_error and slow.metadata["timed_out"]
        assert "timed out after 0.5 seconds" in slow.text and "session is kept" in slow.text
        assert (await session.call(code("x"))).text == "1"
        crash = await session.call(code("import os\nos._exit(1)"))
        assert crash.metadata["restarted"] and "variables, imports" in crash.text
        assert "NameError" in (await session.call(code("x"))).text


async def test_output_cap_has_a_marker(make_ctx) -> None:
    pol = policy(output_bytes=1000)
    async with PythonToolkit(policy=pol) as python, python.session(make_ctx(pol)) as session:
        reply = await session.call(code("print('y' * 50_000)"))
        assert reply.text.startswith("y" * 1000)
        assert "[... output truncated: 49001 more bytes not shown ...]" in reply.text
        big = await session.call(code("'z' * 50_000"))
        assert len(big.text) < 1200 and "value truncated" in big.text


async def test_budgets_are_charged_and_enforced(make_ctx) -> None:
    pol = Policy(sandbox=SandboxPolicy(kind="local", allow_local=True),
                 budgets=Budgets(python_wall_seconds=2.0))
    ctx = make_ctx(pol)
    async with PythonToolkit(policy=pol) as python, python.session(ctx) as session:
        await session.call(code("1"))
        assert 0 < ctx.policy.spent["python_wall_seconds"] < 2.0
        limited = await session.call(code("import time\ntime.sleep(10)"))
        assert limited.metadata["timed_out"]
        with pytest.raises(PolicyDenied, match="python wall-clock seconds"):
            await session.call(code("1"))


@pytest.mark.parametrize("kind", ISOLATED)
async def test_warm_pool_serves_the_first_call(make_ctx, need_kind, kind: str) -> None:
    need_kind(kind)
    pol = policy(kind)
    async with PythonToolkit(policy=pol, pool_size=1) as python:
        assert python.pool is not None
        await python.pool.wait_warm()
        async with python.session(make_ctx(pol)) as session:
            assert (await session.call(code("6 * 7"))).text == "42"
            assert python.pool.hits == 1  # the first call got the warm sandbox
        # A run with other limits gets its own sandbox, never a pooled one.
        other = policy(kind, memory_mb=300)
        async with python.session(make_ctx(other, "run-2")) as session:
            assert (await session.call(code("1 + 1"))).text == "2"
        assert python.pool.hits == 1
