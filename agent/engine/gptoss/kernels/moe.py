"""Mixture-of-experts matmuls over MXFP4 weights kept packed; dequantized in registers only.

Two Triton kernels, both reading ``blocks [E, N, K/32, 16]`` (bytes in the engine's layout,
mxfp4.to_engine_layout) / ``scales [E, N, K/32]``:

- ``_moe_gemv``: one program per (token, expert slot) pair and ``BLOCK_N`` output rows. Decode
  with few tokens per expert: the work is reading the weights once, so it is a GEMV whose
  per-32-value scale is applied after the partial sum (one multiply per block, not per value).
- ``_moe_gemm``: pairs sorted by expert and cut into tiles of ``BLOCK_M`` rows that share one
  expert; each tile dequantizes a weight tile once into bf16 and runs ``tl.dot`` on it. Prefill
  and large decode batches, where an expert serves many tokens.

FP4 decoding trick: an e2m1 code ``s e e m`` moved to fp16 bits ``s 0 0 0 e e m 0...`` is the
value times ``2 ** -14`` (code ``0 0 0 1`` lands on fp16's subnormal 2 ** -15, which the fp16 to
fp32 conversion keeps exactly); the engine's layout holds each code one shift from there. The ``2 ** 14`` is folded into the block scale, built directly
as float32 bits: exponent field ``scale + 14``. Scales above ``2 ** 113`` (byte >= 241) are not
representable that way; real and random checkpoints stay near ``2 ** 0``.

The mlp1 kernels fuse bias + clamped SwiGLU (rows interleave gate and linear); the mlp2 kernels
fuse bias and the routing weight. Token-slot sums happen in ``moe`` (``[T, k, H].sum(1)``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import moe_gemv
from .moe_gemv import GemvInput, GemvShape

LOG2E = 1.4426950408889634


@triton.jit
def _fp4_to_f32(packed):
    """``uint8 [...]`` in the engine's layout (mxfp4.py: ``s E E M e e m S``) -> (low, high)
    float32 values, each times ``2 ** -14``: a code's ``e e m`` lands on fp16 bits 11..9."""
    b = packed.to(tl.uint16)
    lo = (b & 0x8E) << 8
    hi = ((b & 0x70) << 5) | ((b & 0x1) << 15)
    return lo.to(tl.float16, bitcast=True).to(tl.float32), hi.to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _scale_f32(s):
    """e8m0 byte -> ``2 ** (s - 127) * 2 ** 14`` as float32 (see the module docstring)."""
    return ((s.to(tl.int32) + 14) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _swiglu(pairs, alpha, limit):
    """``pairs [..., 2]`` (gate, linear: the interleaved mlp1 rows) -> ``[...]``."""
    gate, lin = tl.split(pairs)
    gate = tl.minimum(gate, limit)
    lin = tl.minimum(tl.maximum(lin, -limit), limit)
    return gate * tl.sigmoid(alpha * gate) * (lin + 1.0)


@triton.jit
def _moe_gemv(
    x_ptr, x_stride,  # activations [R, K]
    blocks_ptr, scales_ptr, bias_ptr,  # [E, N, G, 16] u8, [E, N, G] u8, [E, N]
    experts_ptr, route_ptr,  # [P] expert per pair, [P] routing weight per pair
    out_ptr, out_stride,  # [P, N or N / 2]
    N, K, G, alpha, limit,  # G = K // 32
    X_DIV: tl.constexpr,  # input row = pair // X_DIV (top-k for mlp1, 1 for mlp2)
    SWIGLU: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_G: tl.constexpr,  # 32-value groups per iteration
):  # fmt: skip
    pair = tl.program_id(0)
    nb = tl.program_id(1)
    e = tl.load(experts_ptr + pair).to(tl.int64)
    row = pair // X_DIV
    rows = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = rows < N
    j = tl.arange(0, 16)
    w_base = blocks_ptr + e * N * G * 16 + rows.to(tl.int64)[:, None, None] * (G * 16)
    s_base = scales_ptr + e * N * G + rows.to(tl.int64)[:, None] * G
    x_base = x_ptr + row.to(tl.int64) * x_stride
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for g0 in range(0, G, BLOCK_G):
        g = g0 + tl.arange(0, BLOCK_G)
        g_ok = g < G
        packed = tl.load(
            w_base + g[None, :, None] * 16 + j[None, None, :],
            mask=n_ok[:, None, None] & g_ok[None, :, None], other=0,
        )
        s = tl.load(s_base + g[None, :], mask=n_ok[:, None] & g_ok[None, :], other=0)
        xo = g[:, None] * 32 + 2 * j[None, :]
        x_lo = tl.load(x_base + xo, mask=g_ok[:, None], other=0.0).to(tl.float32)
        x_hi = tl.load(x_base + xo + 1, mask=g_ok[:, None], other=0.0).to(tl.float32)
        lo, hi = _fp4_to_f32(packed)
        part = tl.sum(lo * x_lo[None, :, :] + hi * x_hi[None, :, :], axis=2)  # [BLOCK_N, BLOCK_G]
        acc += tl.sum(part * _scale_f32(s), axis=1)
    acc += tl.load(bias_ptr + e * N + rows, mask=n_ok, other=0.0).to(tl.float32)
    if SWIGLU:
        h = _swiglu(tl.reshape(acc, [BLOCK_N // 2, 2]), alpha, limit)
        cols = nb * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
        tl.store(out_ptr + pair * out_stride + cols, h.to(out_ptr.dtype.element_ty), mask=cols < N // 2)
    else:
        acc = acc * tl.load(route_ptr + pair).to(tl.float32)
        tl.store(out_ptr + pair * out_stride + rows, acc.to(out_ptr.dtype.element_ty), mask=n_ok)


@triton.jit
def _moe_gemm(
    x_ptr, x_stride,  # activations [R, K]
    blocks_ptr, scales_ptr, bias_ptr,  # [E, N, G, 16] u8, [E, N, G] u8, [E, N]
    order_ptr, route_ptr,  # [P] pair ids sorted by expert, [P] routing weight per pair
    tile_expert_ptr, tile_start_ptr, tile_count_ptr,  # [NT] per tile
    out_ptr, out_stride,  # [P, N or N / 2], row = pair id
    N, K, G, alpha, limit,  # G = K // 32
    X_DIV: tl.constexpr,
    SWIGLU: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_G: tl.constexpr,
    DOT_DTYPE: tl.constexpr,  # bf16 on the GPU; float32 for float32 models and the interpreter
    PRECISION: tl.constexpr,  # "ieee" for float32 models
):  # fmt: skip
    tile = tl.program_id(0)
    nb = tl.program_id(1)
    count = tl.load(tile_count_ptr + tile)
    if count == 0:
        return
    e = tl.load(tile_expert_ptr + tile).to(tl.int64)
    start = tl.load(tile_start_ptr + tile)
    m = tl.arange(0, BLOCK_M)
    m_ok = m < count
    pairs = tl.load(order_ptr + start + m, mask=m_ok, other=0)
    x_rows = (pairs // X_DIV).to(tl.int64)
    BLOCK_K: tl.constexpr = BLOCK_G * 32
    rows = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = rows < N
    j = tl.arange(0, 16)
    kk = tl.arange(0, BLOCK_K)
    w_base = blocks_ptr + e * N * G * 16 + rows.to(tl.int64)[:, None, None] * (G * 16)
    s_base = scales_ptr + e * N * G + rows.to(tl.int64)[:, None] * G
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for g0 in range(0, G, BLOCK_G):
        g = g0 + tl.arange(0, BLOCK_G)
        g_ok = g < G
        packed = tl.load(
            w_base + g[None, :, None] * 16 + j[None, None, :],
            mask=n_ok[:, None, None] & g_ok[None, :, None], other=0,
        )
        s = _scale_f32(tl.load(s_base + g[None, :], mask=n_ok[:, None] & g_ok[None, :], other=0))
        lo, hi = _fp4_to_f32(packed)
        w = tl.reshape(tl.join(lo, hi), [BLOCK_N, BLOCK_G, 32]) * s[:, :, None]
        w = tl.reshape(w, [BLOCK_N, BLOCK_K]).to(DOT_DTYPE)
        k_ok = (g0 * 32 + kk) < K
        x = tl.load(
            x_ptr + x_rows[:, None] * x_stride + g0 * 32 + kk[None, :],
            mask=m_ok[:, None] & k_ok[None, :], other=0.0,
        ).to(DOT_DTYPE)
        acc = tl.dot(x, tl.trans(w), acc, input_precision=PRECISION)
    acc += tl.load(bias_ptr + e * N + rows, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    out_rows = out_ptr + pairs.to(tl.int64)[:, None] * out_stride
    if SWIGLU:
        h = _swiglu(tl.reshape(acc, [BLOCK_M, BLOCK_N // 2, 2]), alpha, limit)
        cols = nb * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
        tl.store(out_rows + cols[None, :], h.to(out_ptr.dtype.element_ty),
                 mask=m_ok[:, None] & (cols < N // 2)[None, :])  # fmt: skip
    else:
        acc = acc * tl.load(route_ptr + pairs, mask=m_ok, other=0.0).to(tl.float32)[:, None]
        tl.store(out_rows + rows[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=m_ok[:, None] & n_ok[None, :])  # fmt: skip


# -- host side ------------------------------------------------------------------------------


@dataclass(slots=True)
class MoeTuning:
    """Launch shapes; the benchmark may swap in others (module-level ``TUNING``)."""

    gemv_max_pairs: int = 64  # up to this many (token, expert) pairs: one GEMV per pair
    # moe_gemv (v2, nibble-order activations, bit-built floats); False = the first GEMV below.
    gemv2: bool = True
    gemv_half: bool = True  # half products where moe_gemv.half_ok allows (False: float32 always)
    # Launch shapes (mlp1, mlp2), for up to gemv2_few_pairs (token, expert) pairs and for more.
    # H200 sweep of the two kernels alone, 20b shapes, half products with the e4m3 decode
    # (results_engine_gpu.txt run 19): batch 1 mlp1 32/8/2/2 15.9 us, mlp2 9.0-9.6 us for the
    # best shapes (run 17, the fp16 decode: 18.0, 9.8). mlp2's slices are partial rows that the
    # next RMSNorm (one program per token) reads back, so the whole step, not mlp2 alone,
    # picked 2 slices at batch 1. From batch 3 (more than 8 pairs) the compiler's pipeline
    # (stages=3) with 16 groups a step: batch 8 mlp1 74.3 vs 80.8 us, mlp2 41.0 vs 42-43 us
    # alone (run 22), the whole step 3-4% faster at batch 8 (runs 23, 26, 27), 4.9% at batch 4
    # and 3.0% at 16 (run 28); at batch 1 it measured no better.
    # Float32 products (float32 models) measured best at 64/8/2 and 128/4/4 (29.2 and 13.3 us
    # at batch 1); they run these shapes too, without the pipeline. Shapes are
    # block_n/block_g/warps/ahead/stages. With the three-slot loop (moe_gemv._half_slots), batch
    # 1's mlp1 in one-warp programs of 16 rows measured the same step (run 94).
    gemv2_few_pairs: int = 8
    gemv2_few: tuple[GemvShape, GemvShape] = (GemvShape(32, 8, 2, 2), GemvShape(32, 8, 2, 2))
    gemv2_many: tuple[GemvShape, GemvShape] = (GemvShape(32, 16, 2, 2, 3), GemvShape(64, 16, 4, 2, 3))
    # mlp2's K is sliced (at most gemv2_max_slices2 ways) until its grid has about this many
    # programs per SM; partial sums, so only where the consumer sums them (the model's MoE).
    # Batch 1 with the three-slot loop: 2 slices 1.518 ms a step, 1 slice 1.609, 3 1.569 (run 97).
    gemv2_programs2_per_sm: int = 8
    gemv2_max_slices2: int = 2
    # The router's linear layer inside the router kernel (moe_gemv.gate_route); False: the
    # split-K linear layer, then moe_gemv.route.
    gate_route: bool = True
    # With gate_route at decode sizes: the residual add and RMSNorm before the router inside
    # the router's launch (every program normalises the whole row; False: fused.add_rms_norm).
    fold_norm: bool = True
    # With fold_norm, up to gemv2_few_pairs pairs: the GEMV's programs pick their experts from
    # the router's logits, so the router has no last program to wait for (False: it picks them).
    # H200 batch 1, one call: 1.560 -> 1.522 ms a step; batch 8 measured 0.15 ms slower with it.
    pick_in_gemv: bool = True
    # More pairs than the GEMV takes: the tiles of pairs by expert from one launch (expert_tiles)
    # where ~35 PyTorch ops did, and the router through gate_route too.
    tiles_kernel: bool = True
    # Whole-step H100 sweeps at 20b, batch 1: 4.02 ms (16, 16) vs 4.27 ms (32, 8); but 120b and
    # batch 8 measured 5-9% better with (32, 8) in the run before: retune per model when it matters.
    gemv_block_n: int = 16
    gemv_block_g: int = 16
    gemv_warps: int = 4
    gemm_block_m: int = 64
    gemm_block_n: int = 64
    gemm_block_g: int = 4  # 2 with block_n 128 for prefill-sized tiles
    gemm_warps: int = 4
    gemm_stages: int = 3


TUNING = MoeTuning()


def _dot_dtype(dtype: torch.dtype) -> tl.dtype:
    # float32 models keep float32 (tf32) operands. The CPU interpreter's bf16 tl.dot is wrong
    # (triton 3.6 with numpy 2.x), so float32 there too.
    if dtype == torch.float32 or os.environ.get("TRITON_INTERPRET") == "1":
        return tl.float32
    return tl.bfloat16


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # tf32 is ignored for bf16 operands


def route(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Router: ``x [T, H]`` -> experts ``[T, k]`` int32 and softmax weights over them, float32."""
    logits = torch.nn.functional.linear(x, weight, bias)
    top_logits, top_experts = torch.topk(logits, k, dim=-1)
    return top_experts.to(torch.int32), torch.softmax(top_logits.float(), dim=-1)


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 4  # the CPU interpreter: any small grid
    return torch.cuda.get_device_properties(device).multi_processor_count


def gemv2_ok(hidden: int, inter: int) -> bool:
    return hidden % 32 == 0 and inter % 32 == 0


def gemv2(
    xn: GemvInput,
    experts: torch.Tensor,
    weights: torch.Tensor,
    mlp1: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    mlp2: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    dtype: torch.dtype,
    alpha: float,
    limit: float,
    tuning: MoeTuning | None = None,
    partials: bool = False,
    logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`moe_gemv.moe_gemv` with this module's launch shapes; ``xn`` from ``moe_gemv.route``."""
    tn = tuning or TUNING
    shape1, shape2 = tn.gemv2_few if experts.numel() <= tn.gemv2_few_pairs else tn.gemv2_many
    return moe_gemv.moe_gemv(
        xn, experts, weights, mlp1, mlp2, dtype=dtype, alpha=alpha, limit=limit, shape1=shape1, shape2=shape2,
        programs2=tn.gemv2_programs2_per_sm * _sm_count(xn.values.device), max_slices2=tn.gemv2_max_slices2,
        partials=partials, logits=logits,
    )  # fmt: skip


@triton.jit
def _expert_tiles(
    experts_ptr, P, E, block_m, n_tiles,  # [P] expert per pair
    order_ptr, tile_expert_ptr, tile_start_ptr, tile_count_ptr,  # [P], [n_tiles] x3 (int32)
    P_PAD: tl.constexpr, E_PAD: tl.constexpr, T_PAD: tl.constexpr,
):  # fmt: skip
    """:func:`_tiles` in one program: a counting sort of the pairs by expert (stable), then each
    tile's expert, first sorted pair and pair count, through one-hot ``[pairs, experts]``
    matrices (a few thousand values at decode sizes)."""
    i = tl.arange(0, P_PAD)
    e = tl.arange(0, E_PAD)
    ex = tl.load(experts_ptr + i, mask=i < P, other=E_PAD)  # padding matches no expert
    hit = (ex[:, None] == e[None, :]).to(tl.int32)  # [P_PAD, E_PAD]
    counts = tl.sum(hit, axis=0)
    pair_start = tl.cumsum(counts, axis=0) - counts
    # A pair's place: its expert's first place plus the pairs of that expert before it.
    place = tl.sum(hit * (tl.cumsum(hit, axis=0) - 1 + pair_start[None, :]), axis=1)
    tl.store(order_ptr + place, i, mask=i < P)
    tiles = (counts + block_m - 1) // block_m
    tile_end = tl.cumsum(tiles, axis=0)
    j = tl.arange(0, T_PAD)
    # searchsorted(tile_end, j, right=True): the experts whose tiles all end at or before j.
    expert = tl.sum(((tile_end[None, :] <= j[:, None]) & (e < E)[None, :]).to(tl.int32), axis=1)
    used = expert < E
    expert = tl.minimum(expert, E - 1)
    pick = (expert[:, None] == e[None, :]).to(tl.int32)  # [T_PAD, E_PAD]: each tile's expert
    local = j - tl.sum(pick * (tile_end - tiles)[None, :], axis=1)
    start = tl.sum(pick * pair_start[None, :], axis=1) + local * block_m
    count = tl.where(used, tl.minimum(tl.maximum(tl.sum(pick * counts[None, :], axis=1) - local * block_m, 0), block_m), 0)
    ok = j < n_tiles
    tl.store(tile_expert_ptr + j, expert, mask=ok)
    tl.store(tile_start_ptr + j, start, mask=ok)
    tl.store(tile_count_ptr + j, count, mask=ok)


def expert_tiles(experts: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, ...]:
    """:func:`_tiles`' tensors: from one launch on the GPU at decode sizes (inside a batch-64
    step the PyTorch ops were ~35 launches a layer, waiting on one another), else from those
    ops (prefill: more than 32k pair x expert values for one program)."""
    p = experts.numel()
    p_pad, e_pad = triton.next_power_of_2(p), triton.next_power_of_2(num_experts)
    if not (TUNING.tiles_kernel and experts.is_cuda and p_pad * e_pad <= 32768):
        return _tiles(experts, num_experts, block_m)
    n_tiles = min(p, num_experts) + p // block_m
    order = torch.empty(p, device=experts.device, dtype=torch.int32)
    expert, start, count = (torch.empty(n_tiles, device=experts.device, dtype=torch.int32) for _ in range(3))
    _expert_tiles[(1,)](
        experts, p, num_experts, block_m, n_tiles, order, expert, start, count,
        P_PAD=p_pad, E_PAD=e_pad, T_PAD=triton.next_power_of_2(n_tiles), num_warps=8 if p_pad * e_pad > 8192 else 4,
    )  # fmt: skip
    return order, expert, start, count


def _tiles(experts: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, ...]:
    """Sort pairs by expert and cut them into tiles of one expert each, on the device.

    Shapes depend only on the pair count, so this runs inside a CUDA graph. Returns
    ``order [P]`` and per tile ``expert``, ``start`` (into ``order``), ``count`` (0 = unused).
    """
    p = experts.numel()
    order = torch.argsort(experts, stable=True).to(torch.int32)
    # scatter_add, not bincount: CUDA bincount reads max() back to the host (breaks graphs).
    ones = torch.ones_like(experts, dtype=torch.long)
    counts = torch.zeros(num_experts, dtype=torch.long, device=experts.device).scatter_add_(0, experts.long(), ones)
    tiles = (counts + block_m - 1) // block_m
    tile_end = tiles.cumsum(0)
    pair_start = counts.cumsum(0) - counts
    n_tiles = min(p, num_experts) + p // block_m  # upper bound on sum(ceil(count / block_m))
    j = torch.arange(n_tiles, device=experts.device)
    expert = torch.searchsorted(tile_end, j, right=True)
    used = expert < num_experts
    expert = expert.clamp(max=num_experts - 1)
    local = j - (tile_end - tiles)[expert]
    start = pair_start[expert] + local * block_m
    count = torch.where(used, (counts[expert] - local * block_m).clamp(0, block_m), 0)
    return order, expert.to(torch.int32), start.to(torch.int32), count.to(torch.int32)


def moe(
    x: torch.Tensor,  # [T, H]
    experts: torch.Tensor,  # [T, k] int32
    weights: torch.Tensor,  # [T, k] float32
    mlp1: tuple[torch.Tensor, torch.Tensor, torch.Tensor],  # blocks, scales, bias
    mlp2: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    alpha: float,
    limit: float,
    tuning: MoeTuning | None = None,
    partials: bool = False,
) -> torch.Tensor:
    """Each token through its top-k experts, summed with the routing weights: ``[T, H]``; with
    ``partials`` the grouped GEMM's weighted terms ``[T, k, H]`` float32 instead (the caller's
    norm sums them: no reduction and cast launches)."""
    tn = tuning or TUNING
    t, k = experts.shape
    p = t * k
    b1, s1, bias1 = mlp1
    b2, s2, bias2 = mlp2
    num_experts, n1, h = b1.shape[0], b1.shape[1], x.shape[1]
    inter = n1 // 2
    x = x.contiguous()
    flat = experts.reshape(-1).contiguous()
    route_w = weights.reshape(-1).contiguous()
    hidden = torch.empty(p, inter, device=x.device, dtype=x.dtype)
    y = torch.empty(p, h, device=x.device, dtype=torch.float32)
    if p <= tn.gemv_max_pairs and tn.gemv2 and gemv2_ok(h, inter):
        xn = (x.float() * moe_gemv.X_SCALE).view(t, h // 32, 4, 8).transpose(2, 3).reshape(t, h)
        return gemv2(
            GemvInput(xn, None), experts, weights, mlp1, mlp2, dtype=x.dtype, alpha=alpha, limit=limit, tuning=tn
        )
    if p <= tn.gemv_max_pairs:
        bn, bg, nw = tn.gemv_block_n, tn.gemv_block_g, tn.gemv_warps
        _moe_gemv[(p, triton.cdiv(n1, bn))](
            x, x.stride(0), b1, s1, bias1, flat, route_w, hidden, hidden.stride(0),
            n1, h, h // 32, alpha, limit, X_DIV=k, SWIGLU=True, BLOCK_N=bn, BLOCK_G=bg, num_warps=nw,
        )  # fmt: skip
        _moe_gemv[(p, triton.cdiv(h, bn))](
            hidden, hidden.stride(0), b2, s2, bias2, flat, route_w, y, y.stride(0),
            h, inter, inter // 32, alpha, limit, X_DIV=1, SWIGLU=False, BLOCK_N=bn, BLOCK_G=bg, num_warps=nw,
        )  # fmt: skip
    else:
        bm = min(tn.gemm_block_m, max(16, triton.next_power_of_2(p // num_experts + 1)))
        bn, bg, nw, ns = tn.gemm_block_n, tn.gemm_block_g, tn.gemm_warps, tn.gemm_stages
        if bm >= 64:  # prefill: wider tiles measured faster on H100 (2.43 vs 2.84 ms at T=2048)
            bn, bg = 2 * bn, max(1, bg // 2)
        order, tile_e, tile_s, tile_c = expert_tiles(flat, num_experts, bm)
        n_tiles = tile_e.numel()
        _moe_gemm[(n_tiles, triton.cdiv(n1, bn))](
            x, x.stride(0), b1, s1, bias1, order, route_w, tile_e, tile_s, tile_c,
            hidden, hidden.stride(0), n1, h, h // 32, alpha, limit,
            X_DIV=k, SWIGLU=True, DOT_DTYPE=_dot_dtype(x.dtype), PRECISION=_precision(x.dtype), BLOCK_M=bm, BLOCK_N=bn, BLOCK_G=bg, num_warps=nw, num_stages=ns,
        )  # fmt: skip
        _moe_gemm[(n_tiles, triton.cdiv(h, bn))](
            hidden, hidden.stride(0), b2, s2, bias2, order, route_w, tile_e, tile_s, tile_c,
            y, y.stride(0), h, inter, inter // 32, alpha, limit,
            X_DIV=1, SWIGLU=False, DOT_DTYPE=_dot_dtype(x.dtype), PRECISION=_precision(x.dtype), BLOCK_M=bm, BLOCK_N=bn, BLOCK_G=bg, num_warps=nw, num_stages=ns,
        )  # fmt: skip
    return y.view(t, k, h) if partials else y.view(t, k, h).sum(1).to(x.dtype)
