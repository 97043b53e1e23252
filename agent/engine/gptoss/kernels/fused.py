"""Fused elementwise kernels: RMSNorm (with the residual add before it), and the attention
projection's epilogue (partial sums + bias, RoPE on q and k, the k/v cache write) in one launch.

At batch 1 a decode step is mostly tiny kernels (the weights take ~1.2 ms to read, the ~50
launches per layer took longer than that). ``rope`` is the rotation on its own, the reference
the fused epilogue is tested against.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl
from .pdl import begin, begin_if


@triton.jit
def _normed(x, scale, n, eps):
    """RMSNorm of a row ``x`` (float32, zeros past ``n``) times ``scale``, in float32: the one
    arithmetic every norm kernel here uses, so that they round alike."""
    inv = tl.rsqrt(tl.sum(x * x, axis=0) / n + eps)
    return x * inv * scale


@triton.jit
def _rms_norm(x_ptr, scale_ptr, out_ptr, n, eps, BLOCK: tl.constexpr, PDL: tl.constexpr):
    begin(PDL)
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < n
    x = tl.load(x_ptr + row * n + cols, mask=ok, other=0.0).to(tl.float32)
    scale = tl.load(scale_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * n + cols, _normed(x, scale, n, eps).to(out_ptr.dtype.element_ty), mask=ok)


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    """``x [..., H]`` normalised in float32, times ``scale``, back in ``x``'s dtype."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out = torch.empty_like(flat)
    n = flat.shape[1]
    block = triton.next_power_of_2(n)
    _rms_norm[(flat.shape[0],)](flat, scale, out, n, eps, BLOCK=block, num_warps=8 if block >= 2048 else 4,
                                 **pdl.launch(x.device))  # fmt: skip
    return out.view(x.shape)


@triton.jit
def _embed_rms_norm(
    tokens_ptr, positions_ptr, emb_ptr, scale_ptr, rope_ptr,  # [T], [T] (-1: padding), [V, H], [H], [P, R]
    x_out_ptr, h_out_ptr, rope_out_ptr, n, eps, rope_n,  # [T, H], [T, H], [T, R]
    BLOCK: tl.constexpr, ROPE_BLOCK: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    begin(PDL)
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < n
    x = tl.load(emb_ptr + tl.load(tokens_ptr + row).to(tl.int64) * n + cols, mask=ok, other=0.0)
    tl.store(x_out_ptr + row * n + cols, x, mask=ok)
    scale = tl.load(scale_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(h_out_ptr + row * n + cols, _normed(x.to(tl.float32), scale, n, eps).to(h_out_ptr.dtype.element_ty), mask=ok)
    r = tl.arange(0, ROPE_BLOCK)
    angle = rope_ptr + tl.maximum(tl.load(positions_ptr + row), 0) * rope_n + r
    tl.store(rope_out_ptr + row * rope_n + r, tl.load(angle, mask=r < rope_n), mask=r < rope_n)


def embed_rms_norm(
    tokens: torch.Tensor, positions: torch.Tensor, embedding: torch.Tensor, scale: torch.Tensor, eps: float,
    rope: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A forward pass's first launch: for ``tokens [B, S]`` at ``positions [B, S]`` (-1:
    padding, which takes position 0's angles), the embedding rows ``x [B, S, H]``, their
    RMSNorm times ``scale`` (as :func:`rms_norm`) and the RoPE table's rows ``[B, S, *rope[0]]``
    in ``x``'s dtype. Where the PyTorch ops took a gather, a clamp, a gather and a cast first."""
    t, n = tokens.numel(), embedding.shape[1]
    x = torch.empty(*tokens.shape, n, device=embedding.device, dtype=embedding.dtype)
    h = torch.empty_like(x)
    angles = torch.empty(*tokens.shape, *rope.shape[1:], device=embedding.device, dtype=embedding.dtype)
    rope_n = rope[0].numel()
    block = triton.next_power_of_2(n)
    _embed_rms_norm[(t,)](
        tokens.contiguous(), positions.contiguous(), embedding, scale, rope.contiguous(), x, h, angles, n, eps,
        rope_n, BLOCK=block, ROPE_BLOCK=triton.next_power_of_2(rope_n), num_warps=8 if block >= 2048 else 4,
        **pdl.launch(embedding.device),
    )  # fmt: skip
    return x, h, angles


@triton.jit
def _add_normed(x, d_row_ptr, cols, ok, scale, n, eps, D_ROWS: tl.constexpr, x_out_row_ptr, store):
    """One row's residual add and RMSNorm: ``x`` (float32) plus the ``D_ROWS`` delta rows at
    ``d_row_ptr`` (partial sums, summed like ``.sum(1)``), stored in the output's dtype at
    ``x_out_row_ptr`` where ``store``; returns the normalised row times ``scale``, rounded to
    that dtype (as float32). The rounding of the PyTorch path: the delta, the sum, the norm."""
    d = tl.zeros(x.shape, dtype=tl.float32)
    for i in tl.static_range(D_ROWS):
        d += tl.load(d_row_ptr + i * n + cols, mask=ok, other=0.0).to(tl.float32)
    d = d.to(x_out_row_ptr.dtype.element_ty).to(tl.float32)
    x = (x + d).to(x_out_row_ptr.dtype.element_ty)
    tl.store(x_out_row_ptr + cols, x, mask=store)
    return _normed(x.to(tl.float32), scale, n, eps).to(x_out_row_ptr.dtype.element_ty).to(tl.float32)


@triton.jit
def _add_rms_norm(
    x_ptr, d_ptr, scale_ptr, x_out_ptr, h_out_ptr, n, eps,
    D_ROWS: tl.constexpr, BLOCK: tl.constexpr,
    PDL: tl.constexpr, EARLY: tl.constexpr,  # EARLY: the scale (a weight) read before the PDL wait
):  # fmt: skip
    begin_if(not EARLY, PDL)
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < n
    scale = tl.load(scale_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    begin_if(EARLY, PDL)
    x = tl.load(x_ptr + row * n + cols, mask=ok, other=0.0).to(tl.float32)
    h = _add_normed(x, d_ptr + row * D_ROWS * n, cols, ok, scale, n, eps, D_ROWS, x_out_ptr + row * n, ok)
    tl.store(h_out_ptr + row * n + cols, h.to(h_out_ptr.dtype.element_ty), mask=ok)


def norm_warps(n: int, d_rows: int) -> int:
    """Warps of a program that adds ``d_rows`` delta rows of width ``n`` and normalises: many
    partial rows (split-K sums at batch 1) are latency-bound reads of one program, and more
    warps keep more of them in flight. Kernels that repeat :func:`_add_normed` launch with the
    same count, so that their sums reduce in the same order (the same bits)."""
    block = triton.next_power_of_2(n)
    return 16 if block >= 2048 and d_rows >= 8 else 8 if block >= 2048 else 4


def add_rms_norm(
    x: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x + delta`` and its RMSNorm in one launch (``x [..., H]``). ``delta`` is ``x``-shaped,
    or ``[T, R, H]`` float32 partials (T = rows of ``x``) summed over R first."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    t, n = flat.shape
    d = delta.contiguous()
    d_rows = d.numel() // (t * n)
    x_out = torch.empty_like(flat)
    h_out = torch.empty_like(flat)
    _add_rms_norm[(t,)](
        flat, d, scale, x_out, h_out, n, eps, D_ROWS=d_rows, BLOCK=triton.next_power_of_2(n),
        num_warps=norm_warps(n, d_rows),
        **pdl.launch(x.device, early=True),
    )  # fmt: skip
    return x_out.view(x.shape), h_out.view(x.shape)


@triton.jit
def _rope(
    x_ptr, xs_b, xs_s, xs_h,  # x [B, S, H, D], last dim contiguous
    c_ptr, s_ptr, cs_b, cs_s,  # cos / sin [B, S, ., D/2], last dim contiguous
    out_ptr, S, H,  # out [B, S, H, D] contiguous
    HALF: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    tok = tl.program_id(0)
    b = tok // S
    s = tok % S
    h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    j = tl.arange(0, HALF)
    ok = (h < H)[:, None]
    base = x_ptr + b.to(tl.int64) * xs_b + s.to(tl.int64) * xs_s + h[:, None] * xs_h + j[None, :]
    x1 = tl.load(base, mask=ok, other=0.0)
    x2 = tl.load(base + HALF, mask=ok, other=0.0)
    cs = b.to(tl.int64) * cs_b + s.to(tl.int64) * cs_s + j
    cos = tl.load(c_ptr + cs)[None, :]
    sin = tl.load(s_ptr + cs)[None, :]
    # Same arithmetic and dtype as the PyTorch path: products in x's dtype.
    o1 = x1 * cos - x2 * sin
    o2 = x2 * cos + x1 * sin
    ob = out_ptr + (tok.to(tl.int64) * H + h[:, None]) * (2 * HALF) + j[None, :]
    tl.store(ob, o1.to(out_ptr.dtype.element_ty), mask=ok)
    tl.store(ob + HALF, o2.to(out_ptr.dtype.element_ty), mask=ok)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, S, H, D]`` (halves form the pairs) by ``cos``/``sin [B, S, 1, D/2]``."""
    b, s, h, d = x.shape
    out = torch.empty(b, s, h, d, device=x.device, dtype=x.dtype)
    cos, sin = cos.expand(b, s, 1, d // 2), sin.expand(b, s, 1, d // 2)
    assert sin.stride()[:2] == cos.stride()[:2], "cos and sin must be views of one table"
    block_h = min(16, triton.next_power_of_2(h))
    _rope[(b * s, triton.cdiv(h, block_h))](
        x, x.stride(0), x.stride(1), x.stride(2), cos, sin, cos.stride(0), cos.stride(1),
        out, s, h, HALF=d // 2, BLOCK_H=block_h, num_warps=1 if h * d <= 1024 else 2,
    )  # fmt: skip
    return out


@triton.jit
def _qkv_rope_store(
    qkv_ptr, bias_ptr,  # qkv [T, PARTS, (HQ + 2 HKV) * D] partial sums; bias [(HQ + 2 HKV) * D]
    c_ptr, s_ptr, cs_b, cs_s,  # cos / sin [B, S, ., D/2], last dim contiguous
    slots_ptr,  # [T] cache slot of each token
    q_ptr, k_ptr, v_ptr,  # q out [T, HQ, D]; pools [slots, HKV, D]
    S,
    HQ: tl.constexpr, HKV: tl.constexpr, HALF: tl.constexpr, PARTS: tl.constexpr,
    HAS_BIAS: tl.constexpr, BLOCK_H: tl.constexpr,
    PDL: tl.constexpr, EARLY: tl.constexpr,  # EARLY: bias, cos / sin and slots read before the PDL wait
):  # fmt: skip
    begin_if(not EARLY, PDL)
    tok = tl.program_id(0).to(tl.int64)
    b = tok // S
    s = tok % S
    # Heads of the fused projection in order: HQ query, HKV key, HKV value heads.
    h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    j = tl.arange(0, HALF)
    NH: tl.constexpr = HQ + 2 * HKV
    ok = (h < NH)[:, None]
    col = h[:, None] * (2 * HALF) + j[None, :]
    if HAS_BIAS:
        b1 = tl.load(bias_ptr + col, mask=ok, other=0.0).to(tl.float32)
        b2 = tl.load(bias_ptr + col + HALF, mask=ok, other=0.0).to(tl.float32)
    cs = b * cs_b + s * cs_s + j
    cos = tl.load(c_ptr + cs)[None, :]
    sin = tl.load(s_ptr + cs)[None, :]
    slot = tl.load(slots_ptr + tok).to(tl.int64)
    begin_if(EARLY, PDL)
    x1 = tl.zeros([BLOCK_H, HALF], dtype=tl.float32)
    x2 = tl.zeros([BLOCK_H, HALF], dtype=tl.float32)
    for p in tl.static_range(PARTS):
        row = qkv_ptr + (tok * PARTS + p) * (NH * 2 * HALF) + col
        x1 += tl.load(row, mask=ok, other=0.0).to(tl.float32)
        x2 += tl.load(row + HALF, mask=ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        x1 += b1
        x2 += b2
    # The projection's output dtype, then the same rotation arithmetic as _rope.
    x1 = x1.to(q_ptr.dtype.element_ty)
    x2 = x2.to(q_ptr.dtype.element_ty)
    rotate = (h < HQ + HKV)[:, None]
    o1 = tl.where(rotate, x1 * cos - x2 * sin, x1)
    o2 = tl.where(rotate, x2 * cos + x1 * sin, x2)
    is_q = ok & (h < HQ)[:, None]
    is_k = ok & ((h >= HQ) & (h < HQ + HKV))[:, None]
    is_v = ok & (h >= HQ + HKV)[:, None]
    q_dst = q_ptr + (tok * HQ + h[:, None]) * (2 * HALF) + j[None, :]
    k_dst = k_ptr + (slot * HKV + (h[:, None] - HQ)) * (2 * HALF) + j[None, :]
    v_dst = v_ptr + (slot * HKV + (h[:, None] - HQ - HKV)) * (2 * HALF) + j[None, :]
    tl.store(q_dst, o1, mask=is_q)
    tl.store(q_dst + HALF, o2, mask=is_q)
    tl.store(k_dst, o1.to(k_ptr.dtype.element_ty), mask=is_k)
    tl.store(k_dst + HALF, o2.to(k_ptr.dtype.element_ty), mask=is_k)
    tl.store(v_dst, o1.to(v_ptr.dtype.element_ty), mask=is_v)
    tl.store(v_dst + HALF, o2.to(v_ptr.dtype.element_ty), mask=is_v)


def qkv_rope_store(
    qkv: torch.Tensor,  # [T, P, (Hq + 2 Hkv) D]: P partial sums (float32), or P = 1 finished
    bias: torch.Tensor | None,  # added to the sum (None: already in ``qkv``)
    cos: torch.Tensor,  # [B, S, 1, D/2], T = B * S
    sin: torch.Tensor,
    slots: torch.Tensor,  # [T] cache slot per token
    k_pool: torch.Tensor,  # [slots, Hkv, D]
    v_pool: torch.Tensor,
    num_heads: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The fused attention projection's epilogue in one launch: sum the partials (+ bias), round
    to ``dtype``, rotate q and k, write k and v to their cache slots. Returns q ``[T, Hq, D]``.

    With programmatic dependent launch ``bias``, ``cos``, ``sin`` and ``slots`` are read before
    the wait for the kernel launched just before (which writes ``qkv``): they must be older."""
    t, parts, width = qkv.shape
    hkv, d = k_pool.shape[1], k_pool.shape[2]
    b, s = cos.shape[0], cos.shape[1]
    assert b * s == t and width == (num_heads + 2 * hkv) * d
    assert sin.stride()[:2] == cos.stride()[:2], "cos and sin must be views of one table"
    q = torch.empty(t, num_heads, d, device=qkv.device, dtype=dtype)
    block_h = 16
    _qkv_rope_store[(t, triton.cdiv(num_heads + 2 * hkv, block_h))](
        qkv.contiguous(), bias if bias is not None else qkv, cos, sin, cos.stride(0), cos.stride(1),
        slots.contiguous(), q, k_pool, v_pool, s,
        HQ=num_heads, HKV=hkv, HALF=d // 2, PARTS=parts, HAS_BIAS=bias is not None, BLOCK_H=block_h,
        num_warps=2, **pdl.launch(qkv.device, early=True),
    )  # fmt: skip
    return q


def qkv_rope_store_ok(head_dim: int) -> bool:
    half = head_dim // 2
    return half >= 1 and half & (half - 1) == 0
