"""Fused elementwise kernels: RMSNorm and RoPE, one launch each instead of 7 and 7.

At batch 1 a decode step is mostly tiny kernels (the weights take ~1.2 ms to read, the ~50
launches per layer took longer than that); these two fusions remove about 24 of them per layer.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm(x_ptr, scale_ptr, out_ptr, n, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < n
    x = tl.load(x_ptr + row * n + cols, mask=ok, other=0.0).to(tl.float32)
    inv = tl.rsqrt(tl.sum(x * x, axis=0) / n + eps)
    scale = tl.load(scale_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * n + cols, (x * inv * scale).to(out_ptr.dtype.element_ty), mask=ok)


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    """``x [..., H]`` normalised in float32, times ``scale``, back in ``x``'s dtype."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out = torch.empty_like(flat)
    n = flat.shape[1]
    block = triton.next_power_of_2(n)
    _rms_norm[(flat.shape[0],)](flat, scale, out, n, eps, BLOCK=block, num_warps=8 if block >= 2048 else 4)
    return out.view(x.shape)


@triton.jit
def _add_rms_norm(
    x_ptr, d_ptr, scale_ptr, x_out_ptr, h_out_ptr, n, eps,
    D_ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    ok = cols < n
    d = tl.zeros([BLOCK], dtype=tl.float32)
    for i in tl.static_range(D_ROWS):  # per-expert partials of one token, summed like .sum(1)
        d += tl.load(d_ptr + (row * D_ROWS + i) * n + cols, mask=ok, other=0.0).to(tl.float32)
    # Round where the PyTorch path rounds: the delta to x's dtype, then the sum.
    d = d.to(x_out_ptr.dtype.element_ty).to(tl.float32)
    x = tl.load(x_ptr + row * n + cols, mask=ok, other=0.0).to(tl.float32)
    x = (x + d).to(x_out_ptr.dtype.element_ty)
    tl.store(x_out_ptr + row * n + cols, x, mask=ok)
    xf = x.to(tl.float32)
    inv = tl.rsqrt(tl.sum(xf * xf, axis=0) / n + eps)
    scale = tl.load(scale_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(h_out_ptr + row * n + cols, (xf * inv * scale).to(h_out_ptr.dtype.element_ty), mask=ok)


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
    block = triton.next_power_of_2(n)
    _add_rms_norm[(t,)](
        flat, d, scale, x_out, h_out, n, eps, D_ROWS=d_rows, BLOCK=block,
        num_warps=8 if block >= 2048 else 4,
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


def rope_ok(x: torch.Tensor, cos: torch.Tensor) -> bool:
    half = x.shape[-1] // 2
    return (
        x.dim() == 4 and cos.dim() == 4 and half >= 1 and half & (half - 1) == 0
        and x.stride(-1) == 1 and cos.stride(-1) == 1
    )  # fmt: skip


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
