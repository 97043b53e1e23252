"""Kernel-level sweep on the GPU: MXFP4 MoE launch shapes and decode attention, at gpt-oss-20b's
layer shape. Reports GB/s against the bytes each call must read; weights rotate over several
layers' worth so that L2 (50-60 MB) cannot serve repeats.

``--gemv2`` sweeps the decode GEMV's two stages (mlp1, mlp2) separately over launch shapes and
mlp2's K slices, at batch 1 and 8: each timing is one CUDA-graph replay of 24 launches over 24
layers' worth of experts (Python launch overhead would otherwise dwarf 10-30 us kernels).

Usage::

    python benchmarks/engine_gpu_kernels.py [--gemv2]
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
import triton.testing

from agent.engine.gptoss.kernels import moe as moe_mod
from agent.engine.gptoss.kernels import moe_gemv
from agent.engine.gptoss.kernels.attention import decode_attention

E, H, INTER, K = 32, 2880, 2880, 4
# float32 products, timed beside half products: the shapes MoeTuning used for them
FLOAT32_SHAPES = [(64, 8, 2), (128, 4, 4), (128, 4, 2)]
LAYERS = 6


def experts_set(gen: torch.Generator) -> list[tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]]:
    out = []
    for _ in range(LAYERS):
        def mx(n: int, k: int) -> tuple[torch.Tensor, ...]:
            b = torch.randint(0, 256, (E, n, k // 32, 16), dtype=torch.uint8, device="cuda", generator=gen)
            s = (127 - 6 + torch.randint(-1, 2, (E, n, k // 32), device="cuda", generator=gen)).to(torch.uint8)
            return b, s, 0.1 * torch.randn(E, n, device="cuda", generator=gen).to(torch.bfloat16)

        out.append((mx(2 * INTER, H), mx(H, INTER)))
    return out


def expert_bytes() -> int:
    return 2 * INTER * (H // 2 + H // 32 + 2) + H * (INTER // 2 + INTER // 32 + 2)


def bench(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    state = {"i": 0}

    def step() -> None:
        fn(state["i"] % n)
        state["i"] += 1

    return float(triton.testing.do_bench(step, warmup=25, rep=150, return_mode="median"))


def graph_us(fn, launches: int) -> float:  # type: ignore[no-untyped-def]
    """Median microseconds per launch of ``fn`` (which makes ``launches`` launches) replayed
    from a CUDA graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # compile outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    times = []
    for _ in range(7):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[3] / launches * 1e3


def gemv_stage(
    x: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor, flat: torch.Tensor,
    route_w: torch.Tensor, out: torch.Tensor, out_stride: int, shape: tuple[int, ...], slices: int,
    slice_steps: int, swiglu: bool, half: bool,
):  # type: ignore[no-untyped-def]
    """A function launching one GEMV stage once per layer of ``blocks [L, E, N, G, 16]``
    (``half``: ``x`` is int32 fp16 pairs, ``out`` fp16 for mlp1). ``shape``: GemvShape's fields."""
    launch = moe_gemv.GemvShape(*shape)
    p, n, groups = flat.numel(), blocks.shape[2], blocks.shape[3]
    exps = torch.zeros(x.shape[0], dtype=torch.int32, device=x.device)
    x_exp = 0 if half else moe_gemv.X_EXP

    def run() -> None:
        for i in range(blocks.shape[0]):
            moe_gemv._gemv[(p, triton.cdiv(n, launch.block_n), slices)](
                x, x.stride(0), blocks[i].view(torch.int32), scales[i], bias[i], flat, route_w, out, out_stride,
                n, groups, 1.702, 7.0, slice_steps, exps, x_exp, 512.0, X_DIV=p // x.shape[0], SWIGLU=swiglu,
                HIDDEN_DTYPE=tl.bfloat16, BLOCK_N=launch.block_n, BLOCK_G=launch.block_g, HALF=half,
                ROW_EXP=half and swiglu, AHEAD=launch.ahead, STAGES=launch.stages, num_warps=launch.warps,
                PDL=False, EARLY=False,  # each stage alone: plain launches
            )  # fmt: skip

    return run


def sweep_gemv2() -> None:
    """Both GEMV stages alone, per launch shape (rows / groups per step / warps / steps ahead /
    pipeline stages) and slices."""
    layers = 24
    gen = torch.Generator(device="cuda").manual_seed(0)

    def mx(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = torch.randint(0, 256, (layers, E, n, k // 32, 16), dtype=torch.uint8, device="cuda", generator=gen)
        s = torch.randint(118, 124, b.shape[:-1], dtype=torch.uint8, device="cuda", generator=gen)
        return b, s, torch.zeros(layers, E, n, device="cuda", dtype=torch.bfloat16)

    mlp1, mlp2 = mx(2 * INTER, H), mx(H, INTER)
    loads = [(1, 0), (2, 0), (2, 3), (2, 4)]  # (ahead, stages)
    shapes = [(n, g, w, *a) for n, g, w, a in itertools.product((16, 32, 64), (8, 16), (2, 4), loads)
              if 32 * w <= n * g * 4 <= 32 * 32 * w]  # fmt: skip
    for tokens in (1, 8):
        p = tokens * K
        flat = torch.stack([torch.randperm(E, device="cuda", generator=gen)[:K] for _ in range(tokens)]).int().flatten()
        distinct = flat.unique().numel()
        route_w = torch.rand(p, device="cuda", generator=gen)
        rows = []
        inputs = {  # (activations, hidden vector, mlp1's output) per mode
            True: ((1000 * torch.randn(tokens, H, device="cuda", generator=gen)).half().view(torch.int32),
                   (1000 * torch.randn(p, INTER, device="cuda", generator=gen)).half().view(torch.int32),
                   torch.empty(p, INTER, device="cuda", dtype=torch.float16)),
            False: (torch.randn(tokens, H, device="cuda", generator=gen) * moe_gemv.X_SCALE,
                    torch.randn(p, INTER, device="cuda", generator=gen) * moe_gemv.X_SCALE,
                    torch.empty(p, INTER, device="cuda")),
        }  # fmt: skip
        for half, shape in [(True, s) for s in shapes] + [(False, s) for s in FLOAT32_SHAPES]:
            xn, hidden, out1 = inputs[half]
            mode = "half" if half else "float32"
            steps1 = triton.cdiv(H // 32, shape[1])
            us = graph_us(gemv_stage(xn, *mlp1, flat, route_w, out1, INTER, shape, 1, steps1, True, half), layers)
            rows.append(("mlp1", mode, shape, 1, us, distinct * 2 * INTER * H * 17 / 32 / us / 1e3))
            steps = triton.cdiv(INTER // 32, shape[1])
            for want in (1, 2, 4, 8) if tokens == 1 else (1, 2):
                slice_steps = triton.cdiv(steps, min(want, steps))
                slices = triton.cdiv(steps, slice_steps)
                out2 = torch.empty(p, slices, H, device="cuda")
                run = gemv_stage(hidden, *mlp2, flat, route_w, out2, H, shape, slices, slice_steps, False, half)
                us = graph_us(run, layers)
                rows.append(("mlp2", mode, shape, slices, us, distinct * H * INTER * 17 / 32 / us / 1e3))
        for stage, mode in itertools.product(("mlp1", "mlp2"), ("half", "float32")):
            best = sorted((r for r in rows if r[:2] == (stage, mode)), key=lambda r: r[4])
            print(f"== batch {tokens} {stage} {mode} ({distinct} distinct experts): best 8 of {len(best)}")  # noqa: T201
            for _, _, shape, slices, us, gbs in best[:8]:
                print(f"  {shape} slices={slices}  {us:7.1f} us  {gbs:6.0f} GB/s")  # noqa: T201


def main() -> None:
    if "--gemv2" in sys.argv:
        sweep_gemv2()
        return
    gen = torch.Generator(device="cuda").manual_seed(0)
    layers = experts_set(gen)
    base = moe_mod.MoeTuning()
    gemv = [dict(gemv_block_n=bn, gemv_block_g=bg, gemv_warps=w)
            for bn, bg, w in [(32, 4, 4), (16, 4, 4), (64, 4, 4), (32, 8, 4), (32, 8, 8), (64, 2, 4), (16, 8, 4)]]  # fmt: skip
    gemm = [dict(gemm_block_n=bn, gemm_block_g=bg, gemm_warps=w, gemm_stages=s)
            for bn, bg, w, s in [(64, 2, 4, 3), (128, 2, 4, 3), (64, 4, 4, 3), (128, 4, 8, 3), (64, 2, 4, 1)]]  # fmt: skip
    print(f"{'T':>5} {'tuning':<60} {'us':>8} {'GB/s':>7}")  # noqa: T201
    for t in (1, 4, 8, 16, 64, 2048):
        x = torch.randn(t, H, device="cuda", generator=gen).to(torch.bfloat16)
        experts = torch.stack([torch.randperm(E, device="cuda", generator=gen)[:K] for _ in range(t)]).int()
        weights = torch.softmax(torch.randn(t, K, device="cuda", generator=gen), -1)
        distinct = experts.unique().numel()
        variants = gemv if t * K <= base.gemv_max_pairs else gemm
        if t * K <= base.gemv_max_pairs and t >= 8:
            variants = variants + [dict(gemv_max_pairs=0, gemm_block_m=16)]
        for v in variants:
            tuning = dataclasses.replace(base, **v)
            ms = bench(lambda i: moe_mod.moe(x, experts, weights, *layers[i], alpha=1.702, limit=7.0, tuning=tuning), LAYERS)  # noqa: B023
            gbs = distinct * expert_bytes() / (ms / 1e3) / 1e9
            print(f"{t:>5} {str(v):<60} {ms * 1e3:>8.1f} {gbs:>7.0f}")  # noqa: T201
    # dense reference: cuBLAS bf16 GEMV at the qkv shape, rotating over layers
    ws = [torch.randn(5120, H, device="cuda", dtype=torch.bfloat16) for _ in range(LAYERS)]
    x = torch.randn(1, H, device="cuda", dtype=torch.bfloat16)
    ms = bench(lambda i: F.linear(x, ws[i]), LAYERS)
    print(f"cuBLAS bf16 GEMV 5120x2880: {ms * 1e3:.1f} us, {5120 * H * 2 / (ms / 1e3) / 1e9:.0f} GB/s")  # noqa: T201
    # decode attention over one layer's pool
    hq, hkv, d = 64, 8, 64
    for b, ctx in ((1, 512), (1, 4096), (1, 32768), (8, 4096), (64, 512)):
        slots = b * ctx + 1
        kp = torch.randn(slots, hkv, d, device="cuda", dtype=torch.bfloat16)
        vp = torch.randn_like(kp)
        read = (1 + torch.arange(b * ctx, device="cuda")).view(b, ctx)
        kpos = torch.arange(ctx, device="cuda").expand(b, ctx).contiguous()
        qpos = torch.full((b,), ctx - 1, device="cuda")
        q = torch.randn(b, hq, d, device="cuda", dtype=torch.bfloat16)
        sinks = torch.randn(hq, device="cuda")
        ms = bench(lambda i: decode_attention(q, kp, vp, read, kpos, qpos, sinks, None), 1)  # noqa: B023
        kvb = b * ctx * hkv * d * 2 * 2
        print(f"attention b={b} ctx={ctx}: {ms * 1e3:.1f} us, {kvb / (ms / 1e3) / 1e9:.0f} GB/s of KV")  # noqa: T201
    print(f"(sqrt check {math.sqrt(4):.0f})")  # noqa: T201


if __name__ == "__main__":
    main()
