"""Decode attention (one query per sequence) over the KV pools, reading only live keys.

The cache hands attention, per sequence, a left-packed list of pool slots (``read_slots``) and
their absolute positions (``key_positions``, -1 past the live ones). The kernel counts nothing
past ``lengths[b]`` (the live prefix), so its cost follows the sequence's real length, not the
padded width, and one compiled launch shape (one CUDA graph) serves every length.

Split-K ("flash decoding"): at batch 1 there are only ``num_key_value_heads`` (8) query groups,
far too few programs for 132 SMs, so each group's keys are cut into ``splits`` chunks whose
partial softmax states (max, sum, weighted values) a second kernel merges together with the
per-head sink logit. All query heads sharing a key head (GQA) run in one program on tensor cores.
Up to 128 key columns (the sliding layers' window) take one split: its program folds the sink in
and writes the output itself, and the merge's launch, which cost 1.3 us of a layer's 50 at
batch 1 (results_engine_gpu.txt, run 105), is left out.

Prefill (several queries per sequence): ``_attn_prefill``, flash attention over the same left-
packed keys, one program per (sequence, query head, block of queries), the sink folded into the
softmax's denominator at the end. The PyTorch path materialises every score of a chunk (a 2k
prompt: 1 GB of float32 per layer, written and re-read by the mask, the sink column, softmax
and the cast); here no score leaves the chip. It relies on the live key columns holding
consecutive positions, as ``KVCache.build_meta`` lays them out (tested there): a block of
queries visits only the columns its causal range and window can reach.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from . import pdl
from .pdl import begin_if

LOG2E = 1.4426950408889634
ONE_SPLIT_COLUMNS = 128  # key columns up to which one program per key head takes them all
ONE_SPLIT_BLOCK = 128  # its block of keys


@triton.jit
def _attend(q, k, v, ok, m_i, l_i, acc, qk_scale, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr):
    """One block of keys into a running softmax (flash attention): scores of ``q [R, D]``
    against ``k [C, D]`` in log2 units, masked by ``ok [R or 1, C]``, folded into the row
    maxima ``m_i``, sums ``l_i`` and the weighted values ``acc [R, D]``."""
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    s = tl.where(ok, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    acc = acc * alpha[:, None] + tl.dot(p.to(DOT_DTYPE), v, input_precision=PRECISION)
    return m_new, l_i, acc


@triton.jit
def _key_cols(slots_ptr, kpos_ptr, row, start, hi, BLOCK_L: tl.constexpr):
    """Slots and positions of key columns ``start .. start + BLOCK_L`` (masked at ``hi``)."""
    cols = start + tl.arange(0, BLOCK_L)
    c_ok = cols < hi
    slot = tl.load(slots_ptr + row + cols, mask=c_ok, other=0).to(tl.int64)
    kp = tl.load(kpos_ptr + row + cols, mask=c_ok, other=-1)
    return slot, kp, c_ok


@triton.jit
def _visible(c_ok, kp, qp, window):
    """Which key columns the query at position ``qp`` sees: live, causal, inside the window."""
    ok = c_ok & (kp >= 0) & (kp <= qp)
    return ok & ((window == 0) | (qp - kp < window))


@triton.jit
def _attn_partial(
    q_ptr,  # [B, Hq, D]
    k_ptr, v_ptr,  # pools [slots, Hkv, D]
    slots_ptr, kpos_ptr, slots_stride,  # [B, L] slot and absolute position per key column
    qpos_ptr, len_ptr,  # [B] query position, live key columns
    o_ptr, m_ptr, l_ptr,  # partials [B, Hq, SPLITS, D], [B, Hq, SPLITS] x2 (float32)
    sinks_ptr, out_ptr,  # FINISH: sinks [Hq] and the output [B, Hq, D]
    qk_scale, window,  # scale already times log2(e); window 0 = full attention
    HKV: tl.constexpr, D: tl.constexpr, GROUP: tl.constexpr, GROUP_PAD: tl.constexpr,
    SPLITS: tl.constexpr, BLOCK_L: tl.constexpr, DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,  # "ieee" for float32 models: exact enough to check semantics
    PDL: tl.constexpr,
    EARLY: tl.constexpr,  # the metadata (lengths, positions, slots) read before the PDL wait
    FINISH: tl.constexpr = False,  # one split: fold the sinks in, write the output (no merge)
):  # fmt: skip
    begin_if(not EARLY, PDL)
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    sp = tl.program_id(2)
    g = tl.arange(0, GROUP_PAD)
    g_ok = g < GROUP
    heads = kvh * GROUP + g
    if FINISH:  # a weight: read before the wait
        sink = tl.load(sinks_ptr + heads, mask=g_ok, other=0.0).to(tl.float32) * 1.4426950408889634
    n = tl.load(len_ptr + b).to(tl.int32)
    qp = tl.load(qpos_ptr + b)
    chunk = tl.cdiv(tl.cdiv(n, SPLITS), BLOCK_L) * BLOCK_L
    lo = sp * chunk
    hi = tl.minimum(lo + chunk, n)
    row = b.to(tl.int64) * slots_stride
    d = tl.arange(0, D)
    # Each block's slots are loaded one block ahead of its keys (they are what the keys'
    # addresses wait for). The first block is taken apart from the loop: with EARLY its keys
    # and values older than the query, which earlier steps wrote, are read before the PDL wait
    # too (the wait then only covers the newest column, which the launch before wrote). At
    # batch 1 and short contexts every program has just this one block.
    slot, kp, c_ok = _key_cols(slots_ptr, kpos_ptr, row, lo, hi, BLOCK_L)
    ok = _visible(c_ok, kp, qp, window)
    kv_off = (slot * HKV + kvh)[:, None] * D + d[None, :]
    if EARLY:
        settled = (ok & (kp < qp))[:, None]
        k = tl.load(k_ptr + kv_off, mask=settled, other=0.0)
        v = tl.load(v_ptr + kv_off, mask=settled, other=0.0)
    begin_if(EARLY, PDL)
    q = tl.load(q_ptr + (b * HKV * GROUP + heads)[:, None] * D + d[None, :], mask=g_ok[:, None], other=0.0)
    q = q.to(DOT_DTYPE)
    if EARLY:
        newest = (ok & (kp == qp))[:, None]
        k = tl.load(k_ptr + kv_off, mask=newest, other=k)
        v = tl.load(v_ptr + kv_off, mask=newest, other=v)
    else:
        k = tl.load(k_ptr + kv_off, mask=ok[:, None], other=0.0)
        v = tl.load(v_ptr + kv_off, mask=ok[:, None], other=0.0)
    m_i = tl.full([GROUP_PAD], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([GROUP_PAD], dtype=tl.float32)
    acc = tl.zeros([GROUP_PAD, D], dtype=tl.float32)
    slot, kp, c_ok = _key_cols(slots_ptr, kpos_ptr, row, lo + BLOCK_L, hi, BLOCK_L)
    m_i, l_i, acc = _attend(q, k.to(DOT_DTYPE), v.to(DOT_DTYPE), ok[None, :], m_i, l_i, acc, qk_scale, DOT_DTYPE,
                            PRECISION)  # fmt: skip
    for j0 in range(lo + BLOCK_L, hi, BLOCK_L):
        ok = _visible(c_ok, kp, qp, window)
        kv_off = (slot * HKV + kvh)[:, None] * D + d[None, :]
        k = tl.load(k_ptr + kv_off, mask=ok[:, None], other=0.0).to(DOT_DTYPE)
        v = tl.load(v_ptr + kv_off, mask=ok[:, None], other=0.0).to(DOT_DTYPE)
        slot, kp, c_ok = _key_cols(slots_ptr, kpos_ptr, row, j0 + BLOCK_L, hi, BLOCK_L)
        m_i, l_i, acc = _attend(q, k, v, ok[None, :], m_i, l_i, acc, qk_scale, DOT_DTYPE, PRECISION)
    if FINISH:  # _attn_merge's arithmetic for one split
        top = tl.maximum(m_i, sink)
        w = tl.exp2(m_i - top)
        out = acc * (w / (l_i * w + tl.exp2(sink - top)))[:, None]
        dest = out_ptr + (b * HKV * GROUP + heads)[:, None] * D + d[None, :]
        tl.store(dest, out.to(out_ptr.dtype.element_ty), mask=g_ok[:, None])
    else:
        part = (b * HKV * GROUP + heads) * SPLITS + sp
        tl.store(o_ptr + part[:, None] * D + d[None, :], acc, mask=g_ok[:, None])
        tl.store(m_ptr + part, m_i, mask=g_ok)
        tl.store(l_ptr + part, l_i, mask=g_ok)


@triton.jit
def _attn_merge(
    o_ptr, m_ptr, l_ptr, sinks_ptr, out_ptr,  # partials; sinks [Hq]; out [B, Hq, D]
    HQ: tl.constexpr, D: tl.constexpr, SPLITS: tl.constexpr, SPLITS_PAD: tl.constexpr,
    PDL: tl.constexpr, EARLY: tl.constexpr,  # EARLY: the sink (a weight) read before the PDL wait
):  # fmt: skip
    begin_if(not EARLY, PDL)
    b = tl.program_id(0)
    h = tl.program_id(1)
    sink = tl.load(sinks_ptr + h).to(tl.float32) * 1.4426950408889634
    begin_if(EARLY, PDL)
    sp = tl.arange(0, SPLITS_PAD)
    sp_ok = sp < SPLITS
    d = tl.arange(0, D)
    base = (b * HQ + h) * SPLITS
    m = tl.load(m_ptr + base + sp, mask=sp_ok, other=-1.0e30)
    lsum = tl.load(l_ptr + base + sp, mask=sp_ok, other=0.0)
    o = tl.load(o_ptr + (base + sp)[:, None] * D + d[None, :], mask=sp_ok[:, None], other=0.0)
    top = tl.maximum(tl.max(m, axis=0), sink)
    w = tl.exp2(m - top)
    total = tl.sum(lsum * w, axis=0) + tl.exp2(sink - top)
    out = tl.sum(o * w[:, None], axis=0) / total
    tl.store(out_ptr + (b * HQ + h) * D + d, out.to(out_ptr.dtype.element_ty))


@triton.jit
def _attn_prefill(
    q_ptr,  # [B, S, Hq, D] contiguous
    k_ptr, v_ptr,  # pools [slots, Hkv, D]
    slots_ptr, kpos_ptr, slots_stride,  # [B, L] slot and absolute position per key column
    qpos_ptr, len_ptr, sinks_ptr,  # [B, S] query positions (-1: padding), [B] live columns, [Hq]
    out_ptr,  # [B, S, Hq, D]
    S, qk_scale, window,  # scale already times log2(e); window 0 = full attention
    HQ: tl.constexpr, D: tl.constexpr, GROUP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    bh = tl.program_id(0)
    b = bh // HQ
    h = bh % HQ
    kvh = h // GROUP
    m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < S
    d = tl.arange(0, D)
    qp = tl.load(qpos_ptr + b * S + m, mask=m_ok, other=-1)
    q_off = ((b * S + m).to(tl.int64) * HQ + h)[:, None] * D + d[None, :]
    q = tl.load(q_ptr + q_off, mask=m_ok[:, None], other=0.0).to(DOT_DTYPE)
    n = tl.load(len_ptr + b).to(tl.int32)
    row = b.to(tl.int64) * slots_stride
    first = tl.load(kpos_ptr + row)
    # Live columns hold consecutive positions (column = position - first): the causal limit
    # and the window bound the columns this block of queries can see.
    hi = tl.minimum(tl.maximum(tl.max(qp, axis=0) + 1 - first, 0), n).to(tl.int32)
    q_lo = tl.min(tl.where(qp >= 0, qp, 2147483647), axis=0)
    lo_seen = (tl.minimum(tl.maximum(q_lo - window + 1 - first, 0), n) // BLOCK_N * BLOCK_N).to(tl.int32)
    lo = tl.where(window > 0, lo_seen, 0)
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    for j0 in range(lo, hi, BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N)
        c_ok = cols < hi
        slot = tl.load(slots_ptr + row + cols, mask=c_ok, other=0).to(tl.int64)
        kp = tl.load(kpos_ptr + row + cols, mask=c_ok, other=-1)
        ok = (c_ok & (kp >= 0))[None, :] & (kp[None, :] <= qp[:, None])
        ok = ok & ((window == 0) | (qp[:, None] - kp[None, :] < window))
        kv_off = (slot * (HQ // GROUP) + kvh)[:, None] * D + d[None, :]
        k = tl.load(k_ptr + kv_off, mask=c_ok[:, None], other=0.0).to(DOT_DTYPE)
        v = tl.load(v_ptr + kv_off, mask=c_ok[:, None], other=0.0).to(DOT_DTYPE)
        m_i, l_i, acc = _attend(q, k, v, ok, m_i, l_i, acc, qk_scale, DOT_DTYPE, PRECISION)
    # The sink: one more logit in every row's softmax, with no value (a padded row: only it).
    sink = tl.load(sinks_ptr + h).to(tl.float32) * 1.4426950408889634
    top = tl.maximum(m_i, sink)
    w = tl.exp2(m_i - top)
    out = acc * (w / (l_i * w + tl.exp2(sink - top)))[:, None]
    tl.store(out_ptr + q_off, out.to(out_ptr.dtype.element_ty), mask=m_ok[:, None])


def _dot_dtype(dtype: torch.dtype) -> tl.dtype:
    # float32 models keep float32 (tf32) operands. The CPU interpreter's bf16 tl.dot is wrong
    # (triton 3.6 with numpy 2.x), so float32 there too.
    if dtype == torch.float32 or os.environ.get("TRITON_INTERPRET") == "1":
        return tl.float32
    return tl.bfloat16


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # tf32 is ignored for bf16 operands


def live_lengths(key_positions: torch.Tensor) -> torch.Tensor:
    """Live (left-packed) key columns per row of ``key_positions [B, L]``."""
    return (key_positions >= 0).sum(-1, dtype=torch.int32)


def decode_attention(
    q: torch.Tensor,  # [B, Hq, D]
    k_pool: torch.Tensor,  # [slots, Hkv, D]
    v_pool: torch.Tensor,
    read_slots: torch.Tensor,  # [B, L]
    key_positions: torch.Tensor,  # [B, L]
    positions: torch.Tensor,  # [B] query positions
    sinks: torch.Tensor,  # [Hq]
    window: int | None,
    lengths: torch.Tensor | None = None,  # [B]; computed from key_positions when None
    block_l: int = 64,
    target_programs: int = 264,
) -> torch.Tensor:
    """Softmax attention with sinks for one new token per sequence: ``[B, Hq, D]``.

    With programmatic dependent launch the kernel reads ``read_slots``, ``key_positions``,
    ``positions`` and ``lengths``, and its first block's keys and values at positions before the
    query's, before it waits for the kernel launched just before it (only ``q`` and the keys at
    the query's position come from there): they must be older, as the cache's step metadata
    and earlier steps' keys are."""
    b, hq, d = q.shape
    hkv = k_pool.shape[1]
    group = hq // hkv
    width = read_slots.shape[1]
    if width <= ONE_SPLIT_COLUMNS:
        splits, block_l = 1, min(ONE_SPLIT_BLOCK, max(16, triton.next_power_of_2(width)))
    else:
        splits = max(1, min(triton.cdiv(target_programs, b * hkv), triton.cdiv(width, block_l)))
    if lengths is None:
        lengths = live_lengths(key_positions)
    q = q.contiguous()
    out = torch.empty(b, hq, d, device=q.device, dtype=q.dtype)
    finish = splits == 1
    o_part = torch.empty(b, hq, splits, d, device=q.device, dtype=torch.float32)
    m_part = torch.empty(b, hq, splits, device=q.device, dtype=torch.float32)
    l_part = torch.empty_like(m_part)
    _attn_partial[(b, hkv, splits)](
        q, k_pool, v_pool, read_slots, key_positions, read_slots.stride(0),
        positions, lengths, o_part, m_part, l_part, sinks, out,
        LOG2E / math.sqrt(d), window or 0,
        HKV=hkv, D=d, GROUP=group, GROUP_PAD=max(16, triton.next_power_of_2(group)),
        SPLITS=splits, BLOCK_L=block_l, DOT_DTYPE=_dot_dtype(q.dtype), PRECISION=_precision(q.dtype), num_warps=4,
        FINISH=finish, **pdl.launch(q.device, early=True),
    )  # fmt: skip
    if finish:
        return out
    _attn_merge[(b, hq)](
        o_part, m_part, l_part, sinks, out,
        HQ=hq, D=d, SPLITS=splits, SPLITS_PAD=max(2, triton.next_power_of_2(splits)), num_warps=1,
        **pdl.launch(q.device, early=True),
    )  # fmt: skip
    return out


def prefill_attention(
    q: torch.Tensor,  # [B, S, Hq, D]
    k_pool: torch.Tensor,  # [slots, Hkv, D]
    v_pool: torch.Tensor,
    read_slots: torch.Tensor,  # [B, L]
    key_positions: torch.Tensor,  # [B, L]
    positions: torch.Tensor,  # [B, S] query positions, -1 = padding
    sinks: torch.Tensor,  # [Hq]
    window: int | None,
    lengths: torch.Tensor | None = None,  # [B]; computed from key_positions when None
    block_m: int | None = None,  # queries per program: up to 64, fewer for short chunks
    block_n: int = 64,
) -> torch.Tensor:
    """Softmax attention with sinks for a chunk of queries per sequence: ``[B, S, Hq, D]``."""
    b, s, hq, d = q.shape
    hkv = k_pool.shape[1]
    block_m = block_m or min(64, max(16, triton.next_power_of_2(s)))
    if lengths is None:
        lengths = live_lengths(key_positions)
    q = q.contiguous()
    out = torch.empty_like(q)
    _attn_prefill[(b * hq, triton.cdiv(s, block_m))](
        q, k_pool, v_pool, read_slots, key_positions, read_slots.stride(0),
        positions.contiguous(), lengths, sinks, out, s, LOG2E / math.sqrt(d), window or 0,
        HQ=hq, D=d, GROUP=hq // hkv, BLOCK_M=block_m, BLOCK_N=block_n,
        DOT_DTYPE=_dot_dtype(q.dtype), PRECISION=_precision(q.dtype), num_warps=4,
    )  # fmt: skip
    return out
