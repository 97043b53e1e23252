"""Throughput through ``agent serve`` (HTTP, SSE, HttpEngine) against the in-process engine.

Both sides run the same random checkpoint with greedy decoding and the same requests, driven by
the same code in this process: the in-process side calls ``GptOssEngine`` here (the engine's worker
thread in this process); the HTTP side calls ``HttpEngine`` here, which talks to a real
``agent serve`` process on loopback (its engine's worker thread there). Each side's engine is idle
while the other side is measured. Printed: requests/s and tokens/s for each at
concurrency 1 and 32, and the HTTP layer's overhead = 1 - http_tokens_per_s / inprocess_tokens_per_s.

    .venv/bin/python benchmarks/serve.py [--preset tiny] [--set hidden_size=512 ...]
    .venv/bin/python benchmarks/serve.py --checkpoint agent/demo_model/checkpoint
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import torch

from agent.engine.base import Engine, EngineRequest, Finished, SamplingParams
from agent.engine.gptoss import GptOssEngine, open_checkpoint, write_random_checkpoint
from agent.engine.gptoss.random_checkpoint import _parse_set, preset
from agent.engine.http import HttpEngine

ROOT = Path(__file__).resolve().parents[1]


def requests(n: int, vocab: int, prompt_len: int, max_tokens: int) -> list[EngineRequest]:
    rng = random.Random(0)
    return [EngineRequest(tuple(rng.randrange(vocab) for _ in range(prompt_len)),
                          sampling=SamplingParams(temperature=0, max_tokens=max_tokens))
            for _ in range(n)]


async def drive(engine: Engine, reqs: list[EngineRequest], concurrency: int) -> tuple[float, int]:
    """Run ``reqs`` with at most ``concurrency`` in flight; returns (seconds, completion tokens)."""
    limit = anyio.Semaphore(concurrency)
    tokens = 0

    async def one(r: EngineRequest) -> None:
        nonlocal tokens
        async with limit:
            async for event in engine.generate(r):
                if isinstance(event, Finished):
                    tokens += event.completion_tokens

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for r in reqs:
            tg.start_soon(one, r)
    return time.perf_counter() - start, tokens


def start_server(ckpt: Path, max_batch: int) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "agent", "serve", str(ckpt), "--port",
                             str(port), "--max-batch", str(max_batch), "--max-context", "512"],
                            cwd=ROOT, stderr=subprocess.DEVNULL, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("agent serve did not start")


async def measure(args: argparse.Namespace, ckpt: Path, vocab: int) -> None:
    local = GptOssEngine.from_checkpoint(ckpt, dtype=torch.float32, max_batch=args.max_batch,
                                         max_context=512)
    proc, url = start_server(ckpt, args.max_batch)
    print(f"{'concurrency':>11} {'side':>10} {'requests':>8} {'req/s':>8} {'tok/s':>9}")
    try:
        async with local, HttpEngine(url + "/v1", timeout=300) as http:
            for conc in args.concurrency:
                n = max(4, conc * args.rounds)
                reqs = requests(n, vocab, args.prompt_len, args.max_tokens)
                await drive(local, reqs[:conc], conc)  # warm-up both sides
                await drive(http, reqs[:conc], conc)
                # The sides alternate within each repeat, so that load from other processes on
                # the machine drifts over both alike. Reported: best of ``repeats`` for each
                # side, and the median of the repeats' paired ratios (each from two runs seconds
                # apart: on a small shared machine the baseline itself swings by +-20% between
                # minutes, which moves a ratio of bests more than the HTTP layer does).
                best: dict[str, float] = {}
                paired: list[float] = []
                toks = 0
                for _ in range(args.repeats):
                    secs_of: dict[str, float] = {}
                    for side, engine in (("in-process", local), ("http", http)):
                        secs, toks = await drive(engine, reqs, conc)
                        secs_of[side] = secs
                        best[side] = min(best.get(side, secs), secs)
                    paired.append(1 - secs_of["in-process"] / secs_of["http"])
                rates = {side: toks / secs for side, secs in best.items()}
                for side, secs in best.items():
                    print(f"{conc:>11} {side:>10} {n:>8} {n / secs:>8.2f} {toks / secs:>9.1f}")
                overhead = 1 - rates["http"] / rates["in-process"]
                print(f"{conc:>11} {'overhead':>10} {'':>8} {'':>8} {overhead:>9.1%}  (of the bests)")
                spread = " ".join(f"{r:.1%}" for r in paired)
                print(f"{conc:>11} {'overhead':>10} {'':>8} {'':>8} {statistics.median(paired):>9.1%}"
                      f"  (median of {len(paired)} paired runs: {spread})")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    p.add_argument("--rounds", type=int, default=2, help="requests = concurrency * rounds")
    p.add_argument("--repeats", type=int, default=5, help="runs per side (sides alternate)")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--checkpoint", type=Path,
                   help="a real checkpoint instead of a random one (e.g. agent/demo_model/checkpoint)")
    args = p.parse_args()
    config = (open_checkpoint(args.checkpoint).config if args.checkpoint
              else preset(args.preset, **_parse_set(args.set)))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or write_random_checkpoint(Path(tmp) / "gpt-oss-bench", config)
        print(f"checkpoint: {args.checkpoint or f'preset={args.preset} {args.set}'} "
              f"layers={config.num_hidden_layers} "
              f"hidden={config.hidden_size} experts={config.num_experts} vocab={config.vocab_size}"
              f"; prompt={args.prompt_len} tokens, completion={args.max_tokens} tokens, greedy")
        print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, cpus={os.cpu_count()}"
              f"; http server: uvicorn {_http_impl()}; client: this process (HttpEngine)")
        print(f"load average before: {_load()}")
        anyio.run(measure, args, ckpt, config.vocab_size)
        print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


if __name__ == "__main__":
    main()
