"""Prefill and decode throughput of the bundled gpt-oss engine, next to transformers.

Writes a random checkpoint of the chosen preset (or uses --checkpoint), then for each batch
size runs B prompts of --prompt-len tokens through our EngineCore and through transformers'
GptOssForCausalLM (eager attention, experts dequantized by its MXFP4 loader), greedy:

- prefill tokens/s: B * prompt_len / time to each prompt's first token (max_tokens=1 run);
- decode tokens/s: B * decode_tokens / (time of a 1 + decode_tokens run - the prefill time);
- peak memory: CUDA max allocated, or on CPU the process' peak RSS so far (monotonic).

Usage::

    python benchmarks/engine_decode.py                       # CPU, tiny preset
    python benchmarks/engine_decode.py --device cuda --preset 20b --batches 1,8,64
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from agent.engine.base import EngineRequest, SamplingParams
from agent.engine.gptoss import CoreOptions, EngineCore, write_random_checkpoint
from agent.engine.gptoss.random_checkpoint import preset


def _rate(tokens: int, seconds: float) -> float:
    """Tokens per second; NaN when noise made the difference of two timings non-positive."""
    return tokens / seconds if seconds > 0 else float("nan")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _timed(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Best of ``repeats``: the minimum is the least disturbed by other load on the machine."""
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _prompts(batch: int, length: int, vocab: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(batch)
    return torch.randint(0, vocab, (batch, length), generator=gen).tolist()


def bench_ours(
    path: Path, args: argparse.Namespace, dtype: torch.dtype
) -> dict[int, tuple[float, float, float]]:
    results = {}
    for batch in args.batches:
        _reset_peak(args.device)
        opts = CoreOptions(max_batch=batch, max_context=args.prompt_len + args.decode_tokens + 8,
                           prefill_chunk=args.prompt_len, max_retained=0)  # fmt: skip
        core = EngineCore.from_checkpoint(path, device=args.device, dtype=dtype, options=opts)
        prompts = _prompts(batch, args.prompt_len, core.model.config.vocab_size)

        def run(
            max_tokens: int, core: EngineCore = core, prompts: list[list[int]] = prompts
        ) -> None:
            for p in prompts:
                core.add(
                    EngineRequest(p, sampling=SamplingParams(temperature=0, max_tokens=max_tokens))
                )
            while core.has_work:
                core.step()

        run(2)  # warm-up
        prefill = _timed(lambda: run(1), args.device, args.repeats)
        total = _timed(lambda: run(1 + args.decode_tokens), args.device, args.repeats)
        results[batch] = (batch * args.prompt_len / prefill,
                          _rate(batch * args.decode_tokens, total - prefill), _peak_mib(args.device))  # fmt: skip
        del core
    return results


def bench_transformers(
    path: Path, args: argparse.Namespace, dtype: torch.dtype
) -> dict[int, tuple[float, float, float]]:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    model = transformers.GptOssForCausalLM.from_pretrained(
        path, quantization_config=transformers.Mxfp4Config(dequantize=True), dtype=dtype,
        attn_implementation="eager",
    ).to(args.device).eval()  # fmt: skip
    results = {}
    for batch in args.batches:
        _reset_peak(args.device)
        ids = torch.tensor(
            _prompts(batch, args.prompt_len, model.config.vocab_size), device=args.device
        )

        def gen(n: int, ids: torch.Tensor = ids) -> None:
            with torch.no_grad():
                model.generate(
                    ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
                )

        gen(2)  # warm-up
        prefill = _timed(lambda: gen(1), args.device, args.repeats)
        total = _timed(lambda: gen(1 + args.decode_tokens), args.device, args.repeats)
        results[batch] = (batch * args.prompt_len / prefill,
                          _rate(batch * args.decode_tokens, total - prefill), _peak_mib(args.device))  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="gpt-oss engine prefill/decode throughput")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--checkpoint", type=Path,
                        help="a checkpoint (transformers needs the HF layout; else random)")
    parser.add_argument(
        "--batches", default="1,8,64", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, best kept")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--no-transformers", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or write_random_checkpoint(tmp, preset(args.preset), layout="hf")
        ours = bench_ours(path, args, dtype)
        theirs = {} if args.no_transformers else bench_transformers(path, args, dtype)
    device = (
        torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    )
    model = f"checkpoint={args.checkpoint}" if args.checkpoint else f"preset={args.preset}"
    print(f"# gpt-oss engine decode benchmark: {model} device={args.device} ({device}) "
          f"dtype={dtype} cores={os.cpu_count()} torch_threads={torch.get_num_threads()} "
          f"load_avg={os.getloadavg()[0]:.1f} torch={torch.__version__}")  # fmt: skip
    print(
        f"# prompt_len={args.prompt_len} decode_tokens={args.decode_tokens} best of {args.repeats}; "
        "tok/s, peak MiB; ratio = ours / transformers"
    )
    print(f"{'batch':>5} | {'ours prefill':>12} {'ours decode':>11} {'ours MiB':>9} | "
          f"{'hf prefill':>10} {'hf decode':>9} {'hf MiB':>8} | {'prefill x':>9} {'decode x':>8}")  # fmt: skip
    for batch, (p, d, m) in ours.items():
        hp, hd, hm = theirs.get(batch, (float("nan"),) * 3)
        print(f"{batch:>5} | {p:>12.1f} {d:>11.1f} {m:>9.0f} | {hp:>10.1f} {hd:>9.1f} {hm:>8.0f} | "
              f"{p / hp:>9.2f} {d / hd:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
