"""Sandbox benchmark: cold start, warm-pool start, call round trip, and a 20-call session
against the reference's container-per-call approach, measured side by side in one run.

    .venv/bin/python benchmarks/sandbox.py [--calls 200] [--kinds docker,bubblewrap,local]

The small call is ``print(sum(range(1000)))``. Reference approaches: ``docker run --rm IMAGE
python3 -c CODE`` per call (what openai/gpt-oss's docker tool does, a container per call),
``docker exec`` into a warm container per call, and a new bubblewrap sandbox per call.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandboxes import SandboxLimits, SandboxPool, make_sandbox  # noqa: E402
from sandboxes.bubblewrap import BubblewrapSandbox  # noqa: E402
from sandboxes.image import IMAGE, build_image  # noqa: E402

CODE = "print(sum(range(1000)))"
SESSION = 20


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def bench_kind(kind: str, calls: int, starts: int) -> dict[str, float]:
    limits = SandboxLimits()
    res: dict[str, float] = {}

    async def cold() -> None:
        async with make_sandbox(kind, limits, allow_local=True) as box:
            await box.exec_code(CODE, 10)

    res["cold"] = statistics.median(await timed(cold, starts))

    async with SandboxPool(lambda: make_sandbox(kind, limits, allow_local=True), size=1) as pool:
        warm = []
        for _ in range(starts):
            await pool.wait_warm()
            t = time.perf_counter()
            box = await pool.acquire()
            await box.exec_code(CODE, 10)
            warm.append(time.perf_counter() - t)
            await box.aclose()
        res["warm_start"] = statistics.median(warm)

        await pool.wait_warm()
        box = await pool.acquire()
        try:
            for _ in range(20):
                await box.exec_code(CODE, 10)
            trips = await timed(lambda: box.exec_code(CODE, 10), calls)
        finally:
            await box.aclose()
        res["p50"], res["p95"] = pct(trips, 0.5), pct(trips, 0.95)

        await pool.wait_warm()
        t = time.perf_counter()
        box = await pool.acquire()
        for i in range(SESSION):
            await box.exec_code(f"x{i} = {i}\n{CODE}", 10)
        res["session_warm"] = time.perf_counter() - t
        await box.aclose()

    t = time.perf_counter()
    async with make_sandbox(kind, limits, allow_local=True) as box:
        for i in range(SESSION):
            await box.exec_code(f"x{i} = {i}\n{CODE}", 10)
    res["session_cold"] = time.perf_counter() - t
    return res


def docker_run_per_call(n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "python3", "-c",
                        CODE], check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def docker_exec_per_call(n: int) -> list[float]:
    cid = subprocess.run(["docker", "run", "-d", "--rm", "--network", "none", IMAGE, "sleep",
                          "600"], check=True, capture_output=True, text=True).stdout.strip()
    try:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(["docker", "exec", cid, "python3", "-c", CODE], check=True,
                           capture_output=True)
            out.append(time.perf_counter() - t)
        return out
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def bwrap_per_call(n: int) -> list[float]:
    argv = BubblewrapSandbox(SandboxLimits()).argv()
    cut = argv.index("--") + 1
    command = [*argv[:cut], "/usr/bin/python3", "-c", CODE]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--kinds", default="docker,bubblewrap,local")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if "docker" in kinds:
        build_image()
    print(f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
          f"python {platform.python_version()}")
    print(f"call: {CODE!r}; round trip over {args.calls} calls; starts: median of {args.starts}")
    print()
    results = {kind: await bench_kind(kind, args.calls, args.starts) for kind in kinds}
    print(f"{'kind':<11} {'cold start+call':>15} {'warm-pool+call':>15} {'p50 call':>12} "
          f"{'p95 call':>12} {'20 calls warm':>14} {'20 calls cold':>14}")
    for kind, r in results.items():
        print(f"{kind:<11} {ms(r['cold']):>15} {ms(r['warm_start']):>15} {ms(r['p50']):>12} "
              f"{ms(r['p95']):>12} {ms(r['session_warm']):>14} {ms(r['session_cold']):>14}")
    print()
    print("reference approaches (median per call):")
    refs: dict[str, list[float]] = {}
    if "docker" in kinds:
        refs["docker run --rm per call"] = docker_run_per_call(SESSION)
        refs["docker exec per call"] = docker_exec_per_call(SESSION)
    if "bubblewrap" in kinds and shutil.which("bwrap"):
        refs["new bwrap sandbox per call"] = bwrap_per_call(SESSION)
    for name, values in refs.items():
        print(f"  {name:<28} {ms(statistics.median(values))}   (20 calls: {ms(sum(values))})")
    print()
    if "docker" in kinds:
        ref = sum(refs["docker run --rm per call"])
        r = results["docker"]
        print(f"20-call session, docker: container-per-call {ms(ref)} vs ours warm "
              f"{ms(r['session_warm'])} -> {ref / r['session_warm']:.0f}x faster; "
              f"ours incl. cold start {ms(r['session_cold'])} -> "
              f"{ref / r['session_cold']:.1f}x")
        print(f"warm call p50, docker: {r['p50'] * 1000:.2f} ms "
              f"(docker exec per call: {statistics.median(refs['docker exec per call']) * 1000:.0f}"
              f" ms -> {statistics.median(refs['docker exec per call']) / r['p50']:.0f}x)")
    if "bubblewrap" in kinds and "new bwrap sandbox per call" in refs:
        ref = sum(refs["new bwrap sandbox per call"])
        r = results["bubblewrap"]
        print(f"20-call session, bubblewrap: sandbox-per-call {ms(ref)} vs ours warm "
              f"{ms(r['session_warm'])} -> {ref / r['session_warm']:.0f}x faster")
        print(f"warm call p50, bubblewrap: {r['p50'] * 1000:.2f} ms")


if __name__ == "__main__":
    anyio.run(main)
