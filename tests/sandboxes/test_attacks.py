"""Attacks that must fail safely: the host untouched and the sandbox still usable afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import anyio
import pytest

pytestmark = pytest.mark.anyio
ISOLATED = ["docker", "bubblewrap"]


async def _still_works(box) -> None:
    result = await box.exec_code("21 * 2", timeout=10)
    assert result.value == "42", result


def _host_can_fork() -> None:
    assert subprocess.run(["true"], timeout=10).returncode == 0


@pytest.mark.parametrize("kind", ISOLATED)
async def test_fork_bomb(make_box, kind: str) -> None:
    async with make_box(kind, pids=32) as box:
        bomb = await box.exec_code("import os\nwhile True:\n    os.fork()", timeout=5)
        assert bomb.restarted or "BlockingIOError" in (bomb.error or ""), bomb
        _host_can_fork()
        await _still_works(box)


@pytest.mark.parametrize("kind", ISOLATED)
async def test_memory_bomb(make_box, kind: str) -> None:
    async with make_box(kind, memory_mb=128) as box:
        bomb = await box.exec_code("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))",
                                   timeout=20)
        assert bomb.restarted or "MemoryError" in (bomb.error or ""), bomb
        await box.exec_code("chunks = None", 10)
        await _still_works(box)


@pytest.mark.parametrize("kind", ISOLATED)
@pytest.mark.parametrize("where", ["/mnt/data", "/tmp"])
async def test_disk_fill(make_box, kind: str, where: str) -> None:
    async with make_box(kind, disk_mb=8) as box:
        fill = await box.exec_code(
            f"f = open('{where}/big', 'wb')\nwhile True:\n    f.write(b'0' * 2**20)", timeout=20)
        assert fill.error is not None and ("No space" in fill.error or "too large" in fill.error)
        await box.exec_code(f"f.close()\nimport os\nos.remove('{where}/big')", 10)
        await _still_works(box)


@pytest.mark.parametrize("kind", ISOLATED)
async def test_host_files_outside_the_mounts_are_invisible(make_box, kind: str,
                                                           tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host-secret-value")
    probe = (
        "import os\nfound = []\n"
        f"for p in [{str(secret)!r}, '/etc/shadow', '/root', {os.getcwd()!r}, '/home',"
        " '/var/run/docker.sock', '/run/docker.sock']:\n"
        "    try:\n"
        "        found.append((p, os.listdir(p) if os.path.isdir(p) else open(p).read()[:50]))\n"
        "    except OSError:\n        pass\nfound"
    )
    async with make_box(kind) as box:
        result = await box.exec_code(probe, 10)
        assert result.error is None, result.error
        assert "host-secret-value" not in (result.value or "")
        leaked = dict(eval(result.value or "[]"))  # noqa: S307 - our own sandbox's repr
        assert not set(leaked) - {"/home", "/root"}, leaked
        assert all(not v for v in leaked.values()), leaked  # empty dirs of the image at most
        env = await box.exec_code("import os\nsorted(os.environ)", 10)
        assert "OPENAI_API_KEY" not in (env.value or "") and "AWS" not in (env.value or "")


def _host_ip() -> str:
    # connect() on UDP only picks a route; no packet is sent.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        return str(s.getsockname()[0])


@pytest.mark.parametrize("kind", ISOLATED)
async def test_no_network_when_off(make_box, kind: str) -> None:
    hits: list[str] = []

    async def handle(stream) -> None:
        hits.append("connected")
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="0.0.0.0", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        code = (
            "import socket\nresults = []\n"
            f"for host in ['127.0.0.1', {_host_ip()!r}, '172.17.0.1']:\n"
            "    try:\n"
            f"        socket.create_connection((host, {port}), timeout=2).close()\n"
            "        results.append('connected')\n"
            "    except OSError as e:\n        results.append(type(e).__name__)\n"
            "ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]\n"
            "results, ifaces"
        )
        async with make_box(kind) as box:
            result = await box.exec_code(code, 20)
        tg.cancel_scope.cancel()
    assert result.error is None, result.error
    assert "connected" not in (result.value or ""), result.value
    assert result.value is not None and result.value.endswith("['lo'])")
    assert hits == []


@pytest.mark.parametrize("kind", ISOLATED)
async def test_signals_cannot_reach_the_host(make_box, kind: str) -> None:
    sentinel = subprocess.Popen(["sleep", "60"])
    try:
        async with make_box(kind) as box:
            aimed = await box.exec_code(
                "import os, signal\nout = []\n"
                f"for pid in [{os.getpid()}, {sentinel.pid}]:\n"
                "    try:\n        os.kill(pid, signal.SIGKILL)\n        out.append('sent')\n"
                "    except OSError as e:\n        out.append(type(e).__name__)\nout", 10)
            assert "sent" not in (aimed.value or ""), aimed
            everyone = await box.exec_code("import os, signal\nos.kill(-1, signal.SIGKILL)", 10)
            assert everyone.restarted or everyone.error
            await _still_works(box)
        assert sentinel.poll() is None
    finally:
        sentinel.kill()
        sentinel.wait()


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("kind", ISOLATED)
async def test_no_leftover_processes_after_close(make_box, kind: str) -> None:
    marker = f"{time.time() % 1000:.3f}{uuid.uuid4().int % 1000}"
    async with make_box(kind) as box:
        spawned = await box.exec_code(
            "import subprocess, os\n"
            f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
            f"subprocess.Popen(['sh', '-c', '(sleep {marker} &) ; sleep {marker}'])\n"
            "if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '" + marker
            + "'])", 10)
        assert spawned.error is None, spawned.error
        await anyio.sleep(0.3)
        assert _host_processes_with(marker), "the probe processes should exist while open"
    with anyio.fail_after(10):
        while _host_processes_with(marker):
            await anyio.sleep(0.1)
