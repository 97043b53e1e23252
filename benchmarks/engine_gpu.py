"""The gpt-oss engine on one GPU: decode/prefill speed against the memory floor and transformers.

Random weights at the real shapes are built directly in GPU memory (layer by layer, the same
distributions as ``random_checkpoint``), so no 13-65 GB checkpoint is written. Printed, in one run:

- the device and its measured copy bandwidth (bytes read + written, like the floor's 3.0 TB/s);
- our decode tokens/s at each batch (CUDA-graph replays of the whole step, sampling excluded),
  bytes per token (active weights + live KV), achieved GB/s and the fraction of the floor;
- the engine's own decode loop (``EngineCore.step()``, sampling and read-back included) at
  batches 1 and 8, stepping synchronously and with run-ahead;
- decode at batch 1 across context lengths (attention reads only the live cache);
- prefill tokens/s of one 2k-token prompt; peak memory for one 4k-context sequence;
- transformers' GptOssForCausalLM (bf16 experts, eager) at batches 1 and 8 and the ratio;
- optionally the 120b shape at batch 1 (``--big``);
- launch variants (``tunings``), what each kernel costs inside the step (``ablation``), the
  bound a chain of kernels sets (``reads``: the step's weight spans read by one kernel each, back
  to back, launched plainly and with PDL), and where a captured step's time goes (``timeline``:
  CUPTI's record of every kernel in a replay). The profiled sections (``profile``, ``timeline``)
  run last, on a model of their own: steps timed after a profiled run were slower.

Usage (on the GPU machine)::

    python benchmarks/engine_gpu.py --preset 20b --hf --big --out results.txt
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import time
from collections.abc import Callable

import torch
import triton
import triton.language as tl

from agent.engine.gptoss.config import ModelConfig
from agent.engine.gptoss.kernels.pdl import gdc_launch_dependents, gdc_wait
from agent.engine.gptoss.kv_cache import KVCache
from agent.engine.gptoss.model import GptOssModel
from agent.engine.gptoss.random_checkpoint import preset
from agent.engine.gptoss.weights import LayerWeights, ModelWeights

LINES: list[str] = []


def say(line: str = "") -> None:
    LINES.append(line)
    print(line, flush=True)  # noqa: T201 - a benchmark's output is its product


def random_weights(cfg: ModelConfig, seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> ModelWeights:
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(seed)
    h, e, i2, d = cfg.hidden_size, cfg.num_experts, 2 * cfg.intermediate_size, cfg.head_dim
    qkv = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * d

    def normal(*shape: int, std: float) -> torch.Tensor:
        return (torch.randn(shape, generator=gen, device=dev) * std).to(dtype)

    def mx(rows: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        blocks = torch.randint(0, 256, (e, rows, k // 32, 16), generator=gen, device=dev, dtype=torch.uint8)
        exp = round(-math.log2(math.sqrt(k) * 2.6))
        jitter = torch.randint(-1, 2, (e, rows, k // 32), generator=gen, device=dev)
        return blocks, (127 + exp + jitter).to(torch.uint8)

    layers = []
    for _ in range(cfg.num_hidden_layers):
        b1, s1 = mx(i2, h)
        b2, s2 = mx(h, cfg.intermediate_size)
        layers.append(LayerWeights(
            attn_norm=1 + 0.1 * torch.randn(h, generator=gen, device=dev),
            qkv_weight=normal(qkv, h, std=h**-0.5), qkv_bias=normal(qkv, std=0.1),
            sinks=torch.randn(cfg.num_attention_heads, generator=gen, device=dev),
            out_weight=normal(h, cfg.num_attention_heads * d, std=(cfg.num_attention_heads * d) ** -0.5),
            out_bias=normal(h, std=0.1), mlp_norm=1 + 0.1 * torch.randn(h, generator=gen, device=dev),
            gate_weight=normal(e, h, std=h**-0.5), gate_bias=normal(e, std=0.1),
            mlp1_blocks=b1, mlp1_scales=s1, mlp1_bias=normal(e, i2, std=0.1),
            mlp2_blocks=b2, mlp2_scales=s2, mlp2_bias=normal(e, h, std=0.1),
        ))  # fmt: skip
    return ModelWeights(
        config=cfg, embedding=normal(cfg.vocab_size, h, std=1.0), layers=layers,
        norm=1 + 0.1 * torch.randn(h, generator=gen, device=dev),
        unembedding=normal(cfg.vocab_size, h, std=h**-0.5),
    )  # fmt: skip


def active_bytes(w: ModelWeights, experts_read: float) -> int:
    """Weight bytes one decode step must read when ``experts_read`` experts per layer are used."""
    total = w.unembedding.numel() * 2 + w.norm.numel() * 4 + w.config.hidden_size * 2
    for layer in w.layers:
        dense = [layer.attn_norm, layer.qkv_weight, layer.qkv_bias, layer.sinks, layer.out_weight,
                 layer.out_bias, layer.mlp_norm, layer.gate_weight, layer.gate_bias]  # fmt: skip
        total += sum(t.numel() * t.element_size() for t in dense)
        expert = [layer.mlp1_blocks[0], layer.mlp1_scales[0], layer.mlp1_bias[0],
                  layer.mlp2_blocks[0], layer.mlp2_scales[0], layer.mlp2_bias[0]]  # fmt: skip
        total += experts_read * sum(t.numel() * t.element_size() for t in expert)
    return int(total)


def kv_bytes(cfg: ModelConfig, context: int) -> int:
    per_pos = cfg.num_key_value_heads * cfg.head_dim * 2 * 2  # k and v, bf16
    return per_pos * (len(cfg.full_layers) * context + len(cfg.sliding_layers) * min(context, cfg.sliding_window))


def expected_distinct(e: int, k: int, batch: int) -> float:
    return e * (1 - (1 - k / e) ** batch)


def time_ms(fn: Callable[[], object], iters: int = 30, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def copy_bandwidth() -> float:
    a = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")
    a.random_(0, 255)
    b = torch.empty_like(a)
    ms = time_ms(lambda: b.copy_(a), iters=20)
    return 2 * 2 * 2**30 / (ms / 1e3) / 1e9  # GB/s, read + write


def decode_step(
    model: GptOssModel, cache: KVCache, batch: int, context: int
) -> tuple[float, Callable[[], None], torch.Tensor]:
    """Median ms of one decode step (``model.decode``: the engine's path, host-side inputs
    included) of ``batch`` sequences holding ``context`` positions each; the release of their
    cache, and the last step's logits (every step computes the same ones)."""
    seqs = [cache.allocate() for _ in range(batch)]
    for s in seqs:
        cache.reserve(s, context + 1)
    # Seeded: the tokens pick the experts, and at batch > 1 how many distinct experts a step
    # reads, so every variant and every run times the same routing.
    gen = torch.Generator().manual_seed(batch)
    tokens = torch.randint(0, model.config.vocab_size, (batch,), generator=gen).tolist()

    logits = []

    def step() -> None:
        for s in seqs:  # every step appends at position `context` (its length advances)
            s.length = context
        logits[:] = [model.decode(tokens, seqs, cache)]

    ms = time_ms(step, iters=20 if batch <= 8 else 10)

    def release() -> None:
        for s in seqs:
            cache.free(s)

    return ms, release, logits[0].clone()


def fill_pools(cache: KVCache) -> None:
    """Random keys and values, never zeros (attention over zeros is no timing). They repeat every
    16 slots after the scratch slot 0 (a block; the sliding rings hold 128), the same each call:
    a step's logits then do not depend on which blocks and rings the cache hands out, so
    variants that only launch differently agree bit for bit."""
    gen = torch.Generator(device="cuda").manual_seed(7)
    for pool in (cache.full_k, cache.full_v, cache.slide_k, cache.slide_v):
        pattern = torch.randn(pool.shape[0], 16, *pool.shape[2:], device="cuda", generator=gen).to(pool.dtype)
        pool.copy_(pattern[:, (torch.arange(pool.shape[1], device="cuda") - 1) % 16])


def bench_decode(model: GptOssModel, cache: KVCache, args: argparse.Namespace, bw: float) -> dict[int, float]:
    cfg, w = model.config, model.weights
    out = {}
    say(f"{'batch':>5} {'ctx':>6} {'ms/step':>8} {'tok/s':>9} {'MB/tok':>8} {'GB/s':>7} {'floor':>6}")
    for batch in args.batches:
        ms, release, _ = decode_step(model, cache, batch, args.context)
        release()
        step_bytes = active_bytes(w, expected_distinct(cfg.num_experts, cfg.experts_per_token, batch))
        step_bytes += batch * kv_bytes(cfg, args.context)
        floor_ms = step_bytes / (bw * 1e9) * 1e3
        out[batch] = batch / ms * 1e3
        say(f"{batch:>5} {args.context:>6} {ms:>8.3f} {out[batch]:>9.1f} {step_bytes / batch / 1e6:>8.1f} "
            f"{step_bytes / ms / 1e6:>7.0f} {floor_ms / ms:>6.0%}")  # fmt: skip
    return out


def tuning_variants() -> list[dict[str, object]]:
    """Keys name fields of kernels.moe.MoeTuning, or with "linear." of kernels.linear.LinearTuning,
    with "pdl." of kernels.pdl.PdlTuning. MoE shapes are kernels.moe_gemv.GemvShape; with PDL,
    the shapes near the defaults measured within noise of them (results_engine_gpu.txt, run 40)."""
    from agent.engine.gptoss.kernels.moe_gemv import GemvShape

    return [
        {},
        # mlp1 in one-warp programs of 16 rows (run 94: 1.525 vs 1.526 ms; run 108, each program
        # picking its expert: 1.563 vs 1.526)
        {"gemv2_few": (GemvShape(16, 8, 1), GemvShape(32, 8, 2))},
        # mlp1 in 64-row programs of 4 warps: half as many programs pick (run 108: 1.528 vs 1.526)
        {"gemv2_few": (GemvShape(64, 8, 4), GemvShape(32, 8, 2))},
        {"gemv2_max_slices2": 1},  # mlp2 not cut along K
        {"gemv2_max_slices2": 3},
        {"linear.gemv_rows": 0},  # batch 1's linear layers as split-K dots, like larger batches
        {"gate_route": False},  # the router's linear layer as a launch of its own
        {"fold_norm": False},  # the norm before the router as a launch of its own
        {"pick_in_gemv": False},  # the router's last program picks the experts
        {"linear.logits": False},  # the unembedding by cuBLAS (bf16) and a cast
        {"tiles_kernel": False},  # the grouped GEMM's router and tiles as PyTorch ops (batch 64)
        {"pdl.enabled": False},  # plain launches
    ]


def bench_engine_core(model: GptOssModel, floor_ms: float) -> None:
    """The engine's own decode loop, ``EngineCore.step()`` (scheduling, the step's inputs, the
    replay, sampling, reading the tokens back), per step at batch 1 and 8: set beside the
    ``decode_step`` lines above, what the host adds. Side by side, taking turns: synchronous
    steps, run-ahead (the next step launched before this one's tokens are read) with the argmax
    launched after each replay, and run-ahead with the greedy tokens chosen inside the graph
    (the default). ``floor_ms``: the batch-1 floor of the weights alone (the few hundred cached
    positions add ~0.5%)."""
    from agent.engine.base import EngineRequest, SamplingParams
    from agent.engine.gptoss import CoreOptions, EngineCore

    modes = {
        "": {"run_ahead": False},
        " (run-ahead, argmax launched)": {"greedy_in_graph": False},
        " (run-ahead)": {},
    }
    cores = {
        label: EngineCore(model.weights, CoreOptions(max_batch=8, max_context=1024, prefill_chunk=256, **kw))
        for label, kw in modes.items()
    }  # fmt: skip
    for batch in (1, 8):
        for _ in range(2):
            for label, core in cores.items():
                gen = torch.Generator().manual_seed(batch)
                for _ in range(batch):
                    prompt = torch.randint(0, model.config.vocab_size, (128,), generator=gen).tolist()
                    core.add(EngineRequest(prompt, sampling=SamplingParams(temperature=0.0, max_tokens=200)))
                for _ in range(6):  # the prompts (a 256-token chunk holds two), then warm decode steps
                    core.step()
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(100):
                    core.step()
                torch.cuda.synchronize()  # with run-ahead: the 100th step launched, now done
                ms = (time.perf_counter() - start) * 1e3 / 100
                running = len(core.scheduler.running)
                core.abort_all()
                floor = f", {floor_ms / ms:.0%} of the floor" if batch == 1 else ""
                say(f"EngineCore decode{label}, batch {batch} ({running} running): "
                    f"{ms:.3f} ms/step, {batch / ms * 1e3:.1f} tok/s{floor}")  # fmt: skip


def bench_tunings(model: GptOssModel, cache: KVCache, args: argparse.Namespace) -> None:
    """Whole-step time under other launch shapes of the MoE GEMV and the split-K linear layers,
    or other launch modes (graphs are re-captured for each). The variants take turns for
    ``--rounds`` rounds and each prints its median: a card drifts by a few percent within one
    run, more than most of the differences measured here. Each also prints how far its logits
    are from the first variant's (0 where only the launches differ, not the arithmetic)."""
    import dataclasses
    import statistics

    from agent.engine.gptoss.kernels import linear as linear_mod
    from agent.engine.gptoss.kernels import moe as moe_mod
    from agent.engine.gptoss.kernels import pdl as pdl_mod

    modules = {"linear": linear_mod, "pdl": pdl_mod, "": moe_mod}  # key prefix -> module with TUNING
    bases = {prefix: mod.TUNING for prefix, mod in modules.items()}
    variants = tuning_variants()
    if args.tunings:
        variants = [variants[int(i)] for i in args.tunings.split(",")]
    batches = tuple(b for b in (1, 8, 64) if b <= max(args.batches))  # the cache holds max(batches) rings
    times: list[list[list[float]]] = [[] for _ in variants]
    diffs: list[float] = [0.0] * len(variants)
    first: list[torch.Tensor] = []
    for _ in range(args.rounds):
        for i, v in enumerate(variants):
            fields: dict[str, dict[str, object]] = {prefix: {} for prefix in modules}
            for key, value in v.items():
                prefix, _, name = key.rpartition(".")
                fields[prefix][name] = value
            for prefix, mod in modules.items():
                mod.TUNING = dataclasses.replace(bases[prefix], **fields[prefix])
            model._decode_graphs = None  # type: ignore[attr-defined]
            try:
                row, logits = [], []
                for batch in batches:
                    fill_pools(cache)  # steps write keys: start each from the same cache
                    ms, release, out = decode_step(model, cache, batch, args.context)
                    release()
                    row.append(ms)
                    logits.append(out)
                times[i].append(row)
                first = first or logits
                diffs[i] = max(diffs[i], *((a - b).abs().max().item() for a, b in zip(logits, first, strict=True)))
            except Exception as exc:  # noqa: BLE001 - a shape that fails to compile is a result too
                say(f"  {v}: failed {exc!r}"[:200])
    for prefix, mod in modules.items():
        mod.TUNING = bases[prefix]
    model._decode_graphs = None  # type: ignore[attr-defined]
    say(f"launch shapes, whole decode step (ms/step at batch {' / '.join(map(str, batches))}, median of "
        f"{args.rounds} rounds; max |logit difference| from the first variant):")  # fmt: skip
    for v, runs, diff in zip(variants, times, diffs, strict=True):
        if runs:
            ms = " / ".join(f"{statistics.median(r[j] for r in runs):7.3f}" for j in range(len(batches)))
            say(f"  {str(v or 'default'):<58} {ms}   {diff:.3g}")


@triton.jit
def _read_span(ptr, n, out_ptr, MODE: tl.constexpr, CHUNK: tl.constexpr):
    """Sum ``n`` values at ``ptr`` in CHUNK-wide pieces (a pure read). MODE 0: a plain launch;
    1: PDL, wait first, as the decode kernels do; 2: PDL, let the next kernel launch first, read
    everything, then wait (nothing here depends on the kernel before)."""
    pid = tl.program_id(0)
    if MODE == 1:
        gdc_wait()
        gdc_launch_dependents()
    if MODE == 2:
        gdc_launch_dependents()
    acc = tl.zeros([CHUNK], tl.float32)
    offs = tl.arange(0, CHUNK)
    for c in tl.range(pid, tl.cdiv(n, CHUNK), tl.num_programs(0), num_stages=4):
        i = c.to(tl.int64) * CHUNK + offs
        acc += tl.load(ptr + i, mask=i < n, other=0.0).to(tl.float32)
    if MODE == 2:
        gdc_wait()
    tl.store(out_ptr + pid, tl.sum(acc, axis=0))


def bench_read_chain(model: GptOssModel, step_ms: float) -> None:
    """The bound a chain of kernels sets: the batch-1 step's weight spans (each layer's qkv and
    out projections, 4 experts' mlp1 and mlp2, the unembedding) read by one kernel each, back to
    back in a CUDA graph, against one read over as many bytes, and the step: torch reductions,
    then a Triton read kernel launched plainly, with PDL waiting first (as the decode kernels
    do), and with PDL reading everything before its wait."""
    w = model.weights
    spans = []
    for layer in w.layers:
        spans += [layer.qkv_weight, layer.out_weight, layer.mlp1_blocks[:4], layer.mlp2_blocks[:4]]
    spans.append(w.unembedding)
    # As bf16 (packed experts too: their bits cost nothing to read): summing bytes as uint8
    # measured conversion-bound, 0.28 TB/s.
    spans = [t.reshape(-1).view(torch.uint8).view(torch.bfloat16) for t in spans]
    total = sum(t.numel() * 2 for t in spans)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    out = torch.empty(max(len(spans), 8 * sms), device="cuda")
    big = torch.ones(total // 2, dtype=torch.bfloat16, device="cuda")

    def triton_reads(mode: int, tensors: list[torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            for t in tensors:
                grid = min(triton.cdiv(t.numel(), 2048), 8 * sms)  # the best of a small sweep (run 53)
                _read_span[(grid,)](t, t.numel(), out, MODE=mode, CHUNK=2048, num_warps=4, launch_pdl=mode > 0)

        return run

    def torch_reads(tensors: list[torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            for i, t in enumerate(tensors):
                torch.sum(t, dim=0, dtype=torch.float32, out=out[i])

        return run

    pdl_ok = torch.cuda.get_device_capability() >= (9, 0)
    cases = [("torch, one kernel", torch_reads([big])), ("torch, a kernel per span", torch_reads(spans)),
             ("Triton, one kernel", triton_reads(0, [big])), ("Triton, plain launches", triton_reads(0, spans))]
    if pdl_ok:
        cases += [("Triton, PDL waiting first", triton_reads(1, spans)),
                  ("Triton, PDL reading before the wait", triton_reads(2, spans))]  # fmt: skip
    say(f"reads of the batch-1 step's weights ({total / 1e9:.2f} GB in {len(spans)} spans); the decode step "
        f"{step_ms:.3f} ms:")  # fmt: skip
    for name, fn in cases:
        fn()  # compile and warm up outside the capture
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        ms = time_ms(graph.replay)
        say(f"  {name:<40} {ms:7.3f} ms  {total / ms / 1e9:5.2f} TB/s")


def bench_ablation(model: GptOssModel, cache: KVCache, args: argparse.Namespace) -> None:
    """What each decode kernel costs inside the captured, dependent-launch step: the step with
    one call site's launches left out (its first output replayed instead: logits wrong, timing
    right) against the whole step, at batch 1 and 8, medians of ``--rounds``."""
    import statistics

    from agent.engine.gptoss import kernels
    from agent.engine.gptoss.kernels import attention, fused, linear, moe, moe_gemv, step_meta

    cfg = model.config
    qkv_rows = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * cfg.head_dim
    linear_sites = {qkv_rows: "qkv", cfg.hidden_size: "out"}  # by the weight's rows; else the unembedding
    sites = {  # module, function name, which launch a call is (from its arguments)
        "linear": (linear, "linear_partials", lambda x, w, *a, **k: linear_sites.get(w.shape[0], "unembedding")),
        "epilogue": (fused, "qkv_rope_store", lambda *a, **k: "qkv epilogue"),
        "attention": (attention, "decode_attention", lambda *a, **k: "attention"),
        "norm": (fused, "add_rms_norm", lambda *a, **k: "norms"),
        "router": (moe_gemv, "gate_route", lambda *a, **k: "router"),
        "router+norm": (moe_gemv, "add_norm_gate_route", lambda *a, **k: "router"),
        "experts": (moe, "gemv2", lambda *a, **k: "experts"),
        "unembedding": (kernels, "unembed", lambda *a, **k: "unembedding"),
        "metadata": (step_meta, "decode_meta", lambda *a, **k: "step metadata"),
    }
    small = ["qkv epilogue", "attention", "norms", "router"]
    variants = [[], ["qkv"], ["out"], ["experts"], *[[s] for s in small], small, ["qkv", "out", "experts"],
                ["unembedding"], ["step metadata"]]  # fmt: skip
    left_out: set[str] = set()
    replay: dict[tuple[object, ...], object] = {}
    calls: dict[str, int] = {}  # per forward pass: the n-th call of a site is the same launch

    def forward(*a: object, **k: object) -> object:
        calls.clear()
        return type(model).forward(model, *a, **k)

    def wrap(fn: Callable[..., object], name_of: Callable[..., str]) -> Callable[..., object]:
        def call(*a: object, **k: object) -> object:
            name = name_of(*a, **k)
            calls[name] = n = calls.get(name, 0) + 1
            first = next((t for t in a if isinstance(t, torch.Tensor)), None)
            key = (name, n, None if first is None else tuple(first.shape))
            if name in left_out and key in replay:
                return replay[key]
            result = fn(*a, **k)
            if name in left_out:  # the graph's warm-up call: later calls replay it
                replay[key] = result
            return result

        return call

    originals = {key: getattr(mod, attr) for key, (mod, attr, _) in sites.items()}
    times: list[list[list[float]]] = [[] for _ in variants]
    try:
        model.forward = forward  # type: ignore[method-assign]
        for key, (mod, attr, name_of) in sites.items():
            setattr(mod, attr, wrap(originals[key], name_of))
        for _ in range(args.rounds):
            for i, v in enumerate(variants):
                left_out.clear()
                left_out.update(v)
                replay.clear()
                model._decode_graphs = None  # type: ignore[attr-defined]
                row = []
                for batch in (1, 8):
                    fill_pools(cache)
                    ms, release, _ = decode_step(model, cache, batch, args.context)
                    release()
                    row.append(ms)
                times[i].append(row)
    finally:
        del model.forward
        for key, (mod, attr, _) in sites.items():
            setattr(mod, attr, originals[key])
        model._decode_graphs = None  # type: ignore[attr-defined]
    base = [statistics.median(r[j] for r in times[0]) for j in range(2)]
    say(f"what each kernel costs in the step: ms/step at batch 1 / 8 with its launches left out, and the "
        f"difference (median of {args.rounds}):")  # fmt: skip
    for v, runs in zip(variants, times, strict=True):
        ms = [statistics.median(r[j] for r in runs) for j in range(2)]
        say(f"  {'without ' + ', '.join(v) if v else 'whole step':<56} {ms[0]:7.3f} / {ms[1]:7.3f}   "
            f"{ms[0] - base[0]:+.3f} / {ms[1] - base[1]:+.3f}")  # fmt: skip


def bench_profile(model: GptOssModel, cache: KVCache, args: argparse.Namespace) -> None:
    """Where a step's GPU time goes at batch 1 and 8: kernels of one eager step (graph replays
    run the same kernels back to back), grouped by name; and one prefill's."""
    for batch in (1, 8):
        _profile_step(model, cache, args, batch)
    profile_kernels(prefill_call(model, args.prefill), f"one {args.prefill}-token prefill", top=8)


def bench_timeline(model: GptOssModel, cache: KVCache, args: argparse.Namespace) -> None:
    """Where a captured step's time goes, from CUPTI's record of each kernel in a replay of the
    graph (programmatic dependent launches included). The step is a chain: every kernel is
    charged with the time from the previous kernel's end to its own ("exposed"), which sums to
    the step. The ablation section, which leaves kernels out, misses what a kernel's neighbour
    then exposes instead; this does not."""
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    for batch in args.batches:
        ms, release, _ = decode_step(model, cache, batch, args.context)
        graph = model._decode_graphs.graphs[batch][0].graph  # type: ignore[attr-defined]
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                graph.replay()
            torch.cuda.synchronize()
        release()
        with tempfile.TemporaryDirectory() as tmp:  # the trace's kernel records, in us
            prof.export_chrome_trace(os.path.join(tmp, "trace.json"))
            with open(os.path.join(tmp, "trace.json")) as f:
                records = json.load(f)["traceEvents"]
        kernels = sorted((e["ts"], e["ts"] + e["dur"], e["name"]) for e in records if e.get("cat") == "kernel")
        step = kernels[len(kernels) // 3 : 2 * len(kernels) // 3]  # the middle replay
        if not step:
            say(f"timeline, batch {batch}: no kernel records (CUPTI)")
            continue
        _timeline(step, batch, ms, model.config.num_hidden_layers)


def _timeline(step: list[tuple[float, float, str]], batch: int, ms: float, layers: int) -> None:
    by_name: dict[str, list[float]] = {}
    exposed = []
    prev_end = step[0][0]
    for start, end, name in step:
        exposed.append(end - prev_end)
        prev_end = end
        row = by_name.setdefault(name.split("(")[0].removeprefix("void ")[:40], [0, 0.0, 0.0])
        row[0] += 1
        row[1] += end - start
        row[2] += exposed[-1]
    say(f"timeline, batch {batch}: {len(step)} kernels over {(prev_end - step[0][0]) / 1e3:.3f} ms "
        f"(a replay timed alone: {ms:.3f} ms); us: duration summed, exposed summed")  # fmt: skip
    for name, (count, dur, exp) in sorted(by_name.items(), key=lambda kv: -kv[1][2]):
        say(f"  {name:<40} {count:5d}x {dur:9.1f} {exp:9.1f}")
    # The layers' kernels: from the first kernel after the step's own preamble, in equal groups.
    head = next((i for i, (_, _, name) in enumerate(step) if "meta" not in name and "embed" not in name), 0)
    per = (len(step) - head - 1) // layers
    if per > 0 and (len(step) - head - 1) % layers == 0:
        say(f"  per position in a layer ({per} kernels), summed over {layers} layers: exposed us")
        for k in range(per):
            idx = range(head + k, head + layers * per, per)
            say(f"    {k:2d} {step[head + k][2].split('(')[0][:40]:<40} {sum(exposed[i] for i in idx):9.1f}")


def profile_kernels(fn: Callable[[], object], what: str, top: int) -> None:
    """Run ``fn`` once under the profiler; print its GPU kernels' time grouped by name."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA" or e.self_device_time_total > 0]
    total = sum(e.self_device_time_total for e in events)
    launches = sum(e.count for e in events)
    say(f"profile, {what}: {launches} kernels, {total / 1e3:.2f} ms of kernel time")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:top]:
        say(f"  {e.self_device_time_total / 1e3:7.3f} ms {e.count:5d}x  {e.key[:70]}")


def _profile_step(model: GptOssModel, cache: KVCache, args: argparse.Namespace, batch: int) -> None:
    os.environ["OSS_AGENT_CUDA_GRAPHS"] = "0"
    try:
        seqs = [cache.allocate() for _ in range(batch)]
        for seq in seqs:
            cache.reserve(seq, args.context + 1)
        meta = cache.build_meta(seqs, [args.context] * batch, [1] * batch)
        gen = torch.Generator().manual_seed(batch)  # the same tokens as decode_step's
        tokens = torch.randint(0, model.config.vocab_size, (batch, 1), generator=gen).cuda()
        last = torch.zeros(batch, dtype=torch.long, device="cuda")
        for _ in range(3):
            model.forward(tokens, meta, cache, last)
        torch.cuda.synchronize()
        profile_kernels(lambda: model.forward(tokens, meta, cache, last), f"one eager batch-{batch} step", top=14)
        for seq in seqs:
            cache.free(seq)
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        say(f"profile failed: {exc!r}"[:200])
    finally:
        os.environ.pop("OSS_AGENT_CUDA_GRAPHS", None)


def bench_contexts(model: GptOssModel, cache: KVCache, args: argparse.Namespace) -> None:
    say("decode at batch 1 by context length (ms/step, tok/s):")
    for ctx in args.contexts:
        ms, release, _ = decode_step(model, cache, 1, ctx)
        release()
        say(f"  ctx {ctx:>6}: {ms:7.3f} ms  {1e3 / ms:7.1f} tok/s")


def bench_variants(model: GptOssModel, cache: KVCache, args: argparse.Namespace) -> None:
    """Batch-1 step without graphs, and with the PyTorch path (kernels off), for scale."""
    for label, env in (("kernels, no graph", {"OSS_AGENT_CUDA_GRAPHS": "0"}),
                       ("pytorch path", {"OSS_AGENT_KERNELS": "0"})):  # fmt: skip
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            ms, release, _ = decode_step(model, cache, 1, args.context)
            release()
            say(f"  batch 1, {label}: {ms:.3f} ms/step, {1e3 / ms:.1f} tok/s")
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def prefill_call(model: GptOssModel, n: int) -> Callable[[], object]:
    """One forward pass over an ``n``-token prompt (its cache made here), to call repeatedly."""
    cfg = model.config
    cache = KVCache(cfg, num_blocks=n // 16 + 2, block_size=16, num_rings=1, prefill_chunk=n,
                    device=torch.device("cuda"), dtype=torch.bfloat16)  # fmt: skip
    seq = cache.allocate()
    cache.reserve(seq, n)
    meta = cache.build_meta([seq], [0], [n])
    tokens = torch.randint(0, cfg.vocab_size, (1, n), device="cuda")
    last = torch.tensor([n - 1], device="cuda")
    return lambda: model.forward(tokens, meta, cache, last)


def bench_prefill(model: GptOssModel, args: argparse.Namespace) -> None:
    ms = time_ms(prefill_call(model, args.prefill), iters=5, warmup=2)
    say(f"prefill of one {args.prefill}-token prompt: {ms:.1f} ms, {args.prefill / ms * 1e3:,.0f} tok/s")


def bench_memory_4k(model: GptOssModel) -> None:
    """Peak GPU memory of one 4k-context sequence: prefill 4096 tokens in 256-chunks, decode."""
    cfg = model.config
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    cache = KVCache(cfg, num_blocks=4096 // 16 + 1, block_size=16, num_rings=1, prefill_chunk=256,
                    device=torch.device("cuda"), dtype=torch.bfloat16)  # fmt: skip
    seq = cache.allocate()
    cache.reserve(seq, 4096)
    for start in range(0, 4096 - 256, 256):
        meta = cache.build_meta([seq], [start], [256])
        model.forward(torch.randint(0, cfg.vocab_size, (1, 256), device="cuda"), meta, cache,
                      torch.tensor([255], device="cuda"))  # fmt: skip
    for _ in range(8):  # decode steps (the CUDA graph and its memory pool included)
        model.decode([0], [seq], cache)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    say(f"peak GPU memory, one 4k-context sequence (weights + cache + activations): {peak:.2f} GiB")
    del cache


def bench_hf(cfg: ModelConfig, batches: list[int]) -> dict[int, float]:
    """transformers' model at the same shape: bf16 experts, eager attention, greedy generate."""
    import transformers

    raw = cfg.to_hf()
    raw.pop("quantization_config")
    hf_cfg = transformers.GptOssConfig.from_dict(raw)
    hf_cfg._attn_implementation = "eager"
    torch.cuda.reset_peak_memory_stats()
    with torch.device("cuda"):
        model = transformers.GptOssForCausalLM._from_config(hf_cfg, dtype=torch.bfloat16).eval()
    out = {}
    for batch in batches:
        ids = torch.randint(0, cfg.vocab_size, (batch, 16), device="cuda")

        def gen(n: int, ids: torch.Tensor = ids) -> float:
            torch.cuda.synchronize()
            t = time.perf_counter()
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0,
                           eos_token_id=None, attention_mask=torch.ones_like(ids))  # fmt: skip
            torch.cuda.synchronize()
            return time.perf_counter() - t

        gen(2)
        short, long = gen(4), gen(20)
        out[batch] = batch * 16 / (long - short)
        say(f"  transformers batch {batch:>2}: {out[batch]:7.1f} tok/s "
            f"({(long - short) / 16 * 1e3:.1f} ms/step)")  # fmt: skip
    say(f"  transformers peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return out


def run_ours(args: argparse.Namespace, bw: float) -> dict[int, float]:
    skip = set(args.skip.split(","))
    cfg = preset(args.preset)
    t = time.perf_counter()
    weights = random_weights(cfg)
    say(f"{args.preset}: random weights built on the GPU in {time.perf_counter() - t:.1f} s, "
        f"{weights.nbytes() / 2**30:.2f} GiB")  # fmt: skip
    floor_b = active_bytes(weights, cfg.experts_per_token)
    say(f"floor at batch 1: {floor_b / 1e9:.2f} GB of active weights -> {floor_b / bw / 1e6:.2f} ms, "
        f"{bw * 1e9 / floor_b:.0f} tok/s")  # fmt: skip
    model = GptOssModel(weights, max_positions=max_positions(args))
    if "memory" not in skip:
        bench_memory_4k(model)
    if "prefill" not in skip:
        bench_prefill(model, args)
    cache = decode_cache(model, args)
    ours = bench_decode(model, cache, args, bw)
    if "engine" not in skip:
        bench_engine_core(model, floor_b / bw / 1e6)
    if "variants" not in skip:
        bench_variants(model, cache, args)
    if "contexts" not in skip:
        bench_contexts(model, cache, args)
    if "tunings" not in skip:
        bench_tunings(model, cache, args)
    if "ablation" not in skip:
        bench_ablation(model, cache, args)
    if "reads" not in skip and 1 in ours:
        bench_read_chain(model, 1e3 / ours[1])
    if 64 in ours and 1 in ours:
        say(f"aggregate decode, batch 64 / batch 1: {ours[64] / ours[1]:.1f}x")
    return ours


def max_positions(args: argparse.Namespace) -> int:
    return max([args.context + 8, *args.contexts]) + 8


def decode_cache(model: GptOssModel, args: argparse.Namespace) -> KVCache:
    """The cache the decode sections share: every batch at ``--context``, the longest context."""
    positions = max(max(args.batches) * (args.context + 16), max_positions(args))
    cache = KVCache(model.config, num_blocks=positions // 16 + 64, block_size=16, num_rings=max(args.batches),
                    prefill_chunk=1, device=torch.device("cuda"), dtype=torch.bfloat16)  # fmt: skip
    fill_pools(cache)
    return cache


def run_profiles(args: argparse.Namespace) -> None:
    """The sections run under the profiler, last and on a model of their own: after a profiled
    run the host's CUDA calls stayed slower, and every step timed after it with them (run 122:
    the batch-1 step 1.527-1.607 ms after the prefill's kernel profile, 1.468-1.470 without)."""
    skip = set(args.skip.split(","))
    if "profile" in skip and "timeline" in skip:
        return
    model = GptOssModel(random_weights(preset(args.preset)), max_positions=max_positions(args))
    cache = decode_cache(model, args)
    if "profile" not in skip:
        bench_profile(model, cache, args)
    if "timeline" not in skip:
        bench_timeline(model, cache, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--preset", default="20b")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--context", type=int, default=512, help="positions cached per sequence")
    parser.add_argument("--contexts", default="512,4096,16384,32768")
    parser.add_argument("--prefill", type=int, default=2048)
    parser.add_argument("--hf", action="store_true", help="also time transformers (batches 1, 8)")
    parser.add_argument("--big", action="store_true", help="also time the 120b shape at batch 1")
    parser.add_argument("--skip", default="", help="comma list of: memory,engine,variants,contexts,tunings,ablation,reads,profile,timeline,prefill")
    parser.add_argument("--rounds", type=int, default=3, help="turns each tuning variant takes (medians printed)")
    parser.add_argument("--tunings", default="", help="comma list of indices into tuning_variants() (default: all)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.contexts = [int(c) for c in args.contexts.split(",")]
    props = torch.cuda.get_device_properties(0)
    say(f"device: {props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB; "
        f"torch {torch.__version__}")  # fmt: skip
    bw = copy_bandwidth()
    say(f"device copy bandwidth (read + write): {bw:,.0f} GB/s")
    cfg = preset(args.preset)
    ours = run_ours(args, bw)
    gc.collect()
    torch.cuda.empty_cache()
    if args.hf:
        try:
            hf = bench_hf(cfg, [b for b in (1, 8) if b in ours])
        except Exception as exc:  # noqa: BLE001 - report and go on to the 120b run
            say(f"transformers run failed: {exc!r}")
            hf = {}
        for b, tps in hf.items():
            say(f"ours / transformers at batch {b}: {ours[b]:.1f} / {tps:.1f} = {ours[b] / tps:.1f}x")
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if args.big:
        big = preset("120b")
        weights = random_weights(big)
        floor_b = active_bytes(weights, big.experts_per_token)
        model = GptOssModel(weights, max_positions=1024)
        cache = KVCache(big, num_blocks=64, block_size=16, num_rings=1, prefill_chunk=1,
                        device=torch.device("cuda"), dtype=torch.bfloat16)  # fmt: skip
        import dataclasses

        from agent.engine.gptoss.kernels import moe as moe_mod

        base = moe_mod.TUNING
        for label, v in (("", {}), (" (previous GEMV: gemv2=False)", {"gemv2": False})):
            moe_mod.TUNING = dataclasses.replace(base, **v)
            model._decode_graphs = None  # type: ignore[attr-defined]
            ms, release, _ = decode_step(model, cache, 1, 512)
            release()
            say(f"120b{label}: {weights.nbytes() / 2**30:.1f} GiB of weights, batch 1 ctx 512: {ms:.3f} ms/step, "
                f"{1e3 / ms:.1f} tok/s, floor {floor_b / bw / 1e6:.2f} ms ({floor_b / bw / 1e6 / ms:.0%}); "
                f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")  # fmt: skip
        moe_mod.TUNING = base
        del model, cache, weights
        gc.collect()
        torch.cuda.empty_cache()
    run_profiles(args)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
