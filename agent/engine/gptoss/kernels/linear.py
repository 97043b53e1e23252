"""Linear layers for decode-sized batches (a few rows): split-K, partial sums left unreduced.

At batch 1 the attention projections are matrix-vector products over 30 MB (qkv) and 24 MB
(out) of bf16 weights per layer. Tiled along the output rows only, they make too few programs to
keep every SM reading (qkv: 80 tiles of 64 rows for 132 SMs), and cuBLAS answers with split-K
kernels plus a separate reduction launch. Here each program takes one row tile *and* one slice
of K, so the grid fills the GPU, and writes float32 partial sums ``[M, S, N]``; the kernel that
consumes the result (RoPE + cache write for qkv, residual add + RMSNorm for out) sums the ``S``
slices while it loads them: no reduction launch and no bf16 round trip in between.

The dot runs on tensor cores with the rows padded to 16 (the MMA's smallest M): the padding
costs arithmetic, which a decode step has to spare, and no memory traffic.

For the unembedding, both kernels can also choose each row's greedy token (``best``): every
program takes the largest of its logits and folds it into the row's packed choice with one
atomic max (``sampling.pack_greedy``'s form), so a decode graph ends with its tokens chosen and
no argmax launch follows it.

One row (batch-1 decode) takes ``_linear_gemv`` instead: float32 FMAs on the weights as they
arrive, in one-warp programs of 16 rows with the compiler's 3-stage pipeline, about 6 programs
an SM. Many small programs keep more reads in flight than fewer large ones do. Same call on an
H200 (results_engine_gpu.txt runs 76-79):
- alone, 12 layers in a graph: out projection 10.1 -> 7.7 us, qkv 11.6 -> 9.2 us, as fast as
  pure reads of the same bytes;
- the whole 20b step at batch 1: 1.80 -> 1.72 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import pdl
from .moe import _dot_dtype, _precision, _sm_count
from .pdl import begin

MAX_ROWS = 16  # one MMA tile of rows; larger batches go to cuBLAS


@triton.jit
def _block(ptr, rows, rows_ok, K, k0, hi, kk, CACHE: tl.constexpr):
    """``[len(rows), BLOCK_K]`` of a row-major matrix with ``K`` columns at columns ``k0 +
    kk``, zeros past ``hi``; ``CACHE`` is the load's cache modifier ("" for the default)."""
    k = k0 + kk
    return tl.load(ptr + rows[:, None] * K + k[None, :], mask=rows_ok[:, None] & (k < hi)[None, :], other=0.0,
                   cache_modifier=CACHE)  # fmt: skip


@triton.jit
def _greedy_key(value, index):
    """``sampling.pack_greedy``'s int64 for float32 logits ``value`` at vocabulary ``index``."""
    bits = (value + 0.0).to(tl.int32, bitcast=True)  # -0.0 + 0.0 is 0.0
    key = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # negative floats: larger magnitude, smaller key
    return (key.to(tl.int64) << 32) | (4294967295 - index.to(tl.int64))


@triton.jit
def _fold_greedy(best_ptrs, rows_ok, y, n, n_ok, N):
    """Fold each row's first largest of ``y [R, BLOCK_N]`` (columns ``n [1, BLOCK_N]``, where
    ``n_ok``) into its packed choice at ``best_ptrs [R]``, for the rows where ``rows_ok``."""
    v = tl.where(n_ok, y, float("-inf"))
    top = tl.max(v, axis=1)
    first = tl.min(tl.where(v == top[:, None], n, N), axis=1)
    tl.atomic_max(best_ptrs, _greedy_key(top, first), mask=rows_ok, sem="relaxed")


@triton.jit
def _linear_splitk(
    x_ptr, w_ptr, bias_ptr, out_ptr,  # x [M, K], w [N, K], bias [N], out [M, S, N] float32
    best_ptr,  # GREEDY: [M] int64 packed choices (one slice only)
    M, N, K, slice_blocks,  # BLOCK_K-wide blocks of K per slice
    HAS_BIAS: tl.constexpr, GREEDY: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    PDL: tl.constexpr, EARLY: tl.constexpr,  # EARLY: the first block of weights before the PDL wait
):  # fmt: skip
    nb = tl.program_id(0)
    ks = tl.program_id(1)
    slices = tl.num_programs(1)
    n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    m = tl.arange(0, BLOCK_M)
    kk = tl.arange(0, BLOCK_K)
    n_ok = n < N
    m_ok = m < M
    # In whole blocks, so that the compiler can prove every load 16-byte aligned (with a bare
    # slice length it fell back to 2-byte loads and no asynchronous copies).
    lo = ks * slice_blocks * BLOCK_K
    hi = tl.minimum(lo + slice_blocks * BLOCK_K, K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    first = lo
    if EARLY:  # weights are constants: their first block arrives while the previous kernel ends
        w = _block(w_ptr, n.to(tl.int64), n_ok, K, lo, hi, kk, "")
        begin(PDL)
        x = _block(x_ptr, m, m_ok, K, lo, hi, kk, "")
        acc += tl.dot(x.to(DOT_DTYPE), tl.trans(w.to(DOT_DTYPE)), input_precision=PRECISION)
        first += BLOCK_K
    else:
        begin(PDL)
    for k0 in range(first, hi, BLOCK_K):
        x = _block(x_ptr, m, m_ok, K, k0, hi, kk, "")
        w = _block(w_ptr, n.to(tl.int64), n_ok, K, k0, hi, kk, "")
        acc += tl.dot(x.to(DOT_DTYPE), tl.trans(w.to(DOT_DTYPE)), input_precision=PRECISION)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + n, mask=n_ok & (ks == 0), other=0.0).to(tl.float32)
        acc += bias[None, :]
    dest = out_ptr + (m[:, None] * slices + ks) * N + n[None, :]
    tl.store(dest, acc, mask=m_ok[:, None] & n_ok[None, :])
    if GREEDY:
        _fold_greedy(best_ptr + m, m_ok, acc, n[None, :], n_ok[None, :], N)  # padded rows: no choice


@triton.jit
def _linear_gemv(
    x_ptr, w_ptr, bias_ptr, out_ptr,  # x [1, K], w [N, K], bias [N], out [1, S, N] float32
    best_ptr,  # GREEDY: [1] int64 packed choice (one slice only)
    N, K, slice_blocks,  # BLOCK_K-wide blocks of K per slice
    HAS_BIAS: tl.constexpr, GREEDY: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    STAGES: tl.constexpr,
    PDL: tl.constexpr, EARLY: tl.constexpr,
):  # fmt: skip
    nb = tl.program_id(0)
    ks = tl.program_id(1)
    n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    kk = tl.arange(0, BLOCK_K)
    n_ok = n < N
    rows = n.to(tl.int64)
    lo = ks * slice_blocks * BLOCK_K
    hi = tl.minimum(lo + slice_blocks * BLOCK_K, K)
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    first = lo
    if EARLY:  # weights are constants: their first block arrives while the previous kernel ends
        # Weights past L1 (".cg"): each is read once, while x, which every program re-reads, stays.
        w = _block(w_ptr, rows, n_ok, K, lo, hi, kk, ".cg")
        begin(PDL)
        acc += w.to(tl.float32) * tl.load(x_ptr + lo + kk, mask=lo + kk < hi, other=0.0).to(tl.float32)[None, :]
        first += BLOCK_K
    else:
        begin(PDL)
    for k0 in tl.range(first, hi, BLOCK_K, num_stages=STAGES):
        w = _block(w_ptr, rows, n_ok, K, k0, hi, kk, ".cg")
        acc += w.to(tl.float32) * tl.load(x_ptr + k0 + kk, mask=k0 + kk < hi, other=0.0).to(tl.float32)[None, :]
    y = tl.sum(acc, axis=1)
    if HAS_BIAS:
        y += tl.load(bias_ptr + n, mask=n_ok & (ks == 0), other=0.0).to(tl.float32)
    tl.store(out_ptr + ks * N + n, y, mask=n_ok)
    if GREEDY:
        one = tl.zeros([1], tl.int32)
        _fold_greedy(best_ptr + one, one == 0, y[None, :], n[None, :], n_ok[None, :], N)


@dataclass(slots=True)
class LinearTuning:
    """Launch shape; the benchmark may swap in others (module-level ``TUNING``)."""

    enabled: bool = True  # False: cuBLAS for every size (the benchmark's comparison)
    block_n: int = 32  # H200 sweep (run 7): 32 rows 2.90 ms/step at batch 1, 64 rows 3.11
    block_k: int = 128
    programs_per_sm: int = 3  # K is sliced until the grid has about this many programs per SM
    warps: int = 4
    stages: int = 4
    # One row: _linear_gemv (0 turns it off). H200 sweep, whole step at batch 1 (run 78): 16 rows
    # x 128, 1 warp, 3 stages, 6 programs an SM 1.719 ms; 8 rows at 12 an SM 1.720; 2 or 4
    # stages, 256 or 64 columns, 32 rows, 8 an SM: 1.73-1.78; the split-K dot 1.803.
    gemv_rows: int = 1
    gemv_block_n: int = 16
    gemv_block_k: int = 128
    gemv_warps: int = 1
    gemv_stages: int = 3
    gemv_programs_per_sm: int = 6
    logits: bool = True  # the unembedding through these kernels too (False: cuBLAS and a cast)


TUNING = LinearTuning()


def linear_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Does ``x [M, K] @ weight.T`` take :func:`linear_partials`? (few rows, aligned K)."""
    return x.dim() == 2 and rows_ok(x.shape[0], weight)


def rows_ok(rows: int, weight: torch.Tensor) -> bool:
    """:func:`linear_ok` for ``rows`` rows."""
    return TUNING.enabled and rows <= MAX_ROWS and weight.shape[1] % 16 == 0


def _split_k(
    n: int, k: int, block_n: int, block_k: int, programs_per_sm: int, device: torch.device
) -> tuple[int, int, int]:
    """Row tiles, blocks of K per slice and slices: K is cut until the grid has about
    ``programs_per_sm`` programs an SM."""
    tiles = triton.cdiv(n, block_n)
    k_blocks = triton.cdiv(k, block_k)
    want = max(1, min(k_blocks, triton.cdiv(programs_per_sm * _sm_count(device), tiles)))
    slice_blocks = triton.cdiv(k_blocks, want)
    return tiles, slice_blocks, triton.cdiv(k_blocks, slice_blocks)


def linear_partials(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, tuning: LinearTuning | None = None, *,
    best: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x [M, K] @ weight.T + bias`` as float32 partial sums ``[M, S, N]`` over ``S`` slices of
    K (bias in slice 0): their sum over dim 1 is the product. With ``best [M]`` (int64, holding
    ``sampling.NO_CHOICE`` or an earlier choice), K is not sliced (``S`` is 1) and each row's
    greedy choice is folded into ``best`` in ``sampling.pack_greedy``'s form."""
    tn = tuning or TUNING
    x = x.contiguous()
    m, k = x.shape
    n = weight.shape[0]
    greedy = {"GREEDY": best is not None}
    if m <= tn.gemv_rows:
        tiles, slice_blocks, slices = _split_k(n, k, tn.gemv_block_n, tn.gemv_block_k, tn.gemv_programs_per_sm, x.device)
        if best is not None:
            slice_blocks, slices = triton.cdiv(k, tn.gemv_block_k), 1
        out = torch.empty(m, slices, n, device=x.device, dtype=torch.float32)
        _linear_gemv[(tiles, slices)](
            x, weight, bias if bias is not None else weight, out, best if best is not None else out, n, k,
            slice_blocks, HAS_BIAS=bias is not None, **greedy, BLOCK_N=tn.gemv_block_n, BLOCK_K=tn.gemv_block_k,
            STAGES=tn.gemv_stages, num_warps=tn.gemv_warps, **pdl.launch(x.device, early=True),
        )  # fmt: skip
        return out
    tiles, slice_blocks, slices = _split_k(n, k, tn.block_n, tn.block_k, tn.programs_per_sm, x.device)
    if best is not None:
        slice_blocks, slices = triton.cdiv(k, tn.block_k), 1
    out = torch.empty(m, slices, n, device=x.device, dtype=torch.float32)
    _linear_splitk[(tiles, slices)](
        x, weight, bias if bias is not None else weight, out, best if best is not None else out, m, n, k,
        slice_blocks, HAS_BIAS=bias is not None, **greedy, DOT_DTYPE=_dot_dtype(x.dtype),
        PRECISION=_precision(x.dtype),
        BLOCK_M=MAX_ROWS, BLOCK_N=tn.block_n, BLOCK_K=tn.block_k, num_warps=tn.warps, num_stages=tn.stages,
        **pdl.launch(x.device, early=True),
    )  # fmt: skip
    return out
