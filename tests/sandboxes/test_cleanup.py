"""Sandboxes are cleaned up when a call is cancelled, and leftovers are swept at start-up."""

from __future__ import annotations

import socket

import anyio
import pytest

from sandboxes import SandboxPool, SandboxState

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ["docker", "bubblewrap"])
async def test_cancelled_call_then_close_leaves_nothing(make_box, kind: str) -> None:
    box = make_box(kind)
    async with box:
        with anyio.move_on_after(0.5):
            await box.exec_code("import time\ntime.sleep(60)", timeout=60)
        assert box.state is SandboxState.BROKEN
        again = await box.exec_code("1 + 1", 10)  # the next call starts over, and says so
        assert again.value == "2" and again.restarted
        if kind == "docker":
            container = box._live.transport.container  # type: ignore[union-attr]
    assert box.state is SandboxState.CLOSED
    if kind == "docker":
        import docker.errors

        with anyio.fail_after(10):
            while True:
                try:
                    await anyio.to_thread.run_sync(container.reload)
                except docker.errors.NotFound:
                    break
                await anyio.sleep(0.1)


async def test_sweep_removes_containers_of_dead_processes(make_box) -> None:
    from sandboxes.docker import DockerSandbox, sweep

    box = make_box("docker")
    assert isinstance(box, DockerSandbox)
    kwargs = box.create_kwargs()
    kwargs["labels"] = {**kwargs["labels"], "oss-agent.owner": f"{socket.gethostname()}/gone/1/2"}
    kwargs["host_config"]["AutoRemove"] = False
    created = await anyio.to_thread.run_sync(lambda: box.client.api.create_container(**kwargs))
    removed = await anyio.to_thread.run_sync(sweep)
    assert created["Id"][:12] in removed
    ours = await anyio.to_thread.run_sync(
        lambda: box.client.containers.list(all=True, filters={"id": created["Id"]}))
    assert ours == []


async def test_pool_closes_what_it_holds(make_box) -> None:
    made = []

    def factory():
        made.append(make_box("local"))
        return made[-1]

    async with SandboxPool(factory, size=2) as pool:
        await pool.wait_warm()
        box = await pool.acquire()
        await box.aclose()
        await pool.wait_warm()
    assert all(b.state is SandboxState.CLOSED for b in made)
