"""Decode-side MoE kernels (few tokens per expert): router top-k and an MXFP4 GEMV built for
bandwidth.

``_route``: one program per token takes the router logits, picks the top-k experts (k rounds of
max / first-index-of-max), softmaxes the chosen logits and writes the token's activations in the
*nibble order* the GEMV reads (below). One launch instead of topk (2 kernels), softmax and casts.
``_gate_route`` also computes the logits (the router's linear layer): up to 32 programs per
token, the last of them to finish picks the experts (a counter per token, reset by that program).
In a layer's decode step it also takes the residual add and RMSNorm before it (every program
normalises the whole row), and at batch 1-2 it leaves the pick to the GEMV: each ``_gemv``
program picks its pair's expert from the logits (``PICK``), so no router program waits for
the others.

``_gemv``: one program per (token, expert) pair and ``BLOCK_N`` weight rows. Why it is faster
than the first version (``moe._moe_gemv``), each point a cost that version paid per weight byte:

- weights are read as int32 words (4 per 32-value group: one 16-byte load per row and group);
- an e2m1 code becomes a float32 *bit pattern* with two shifts and one and/or: magnitude bits
  ``e e m`` go to bits 22..24 and the sign to bit 31. That is the value times ``2 ** -126``
  (code ``0 0 1`` lands on the float32 subnormal ``2 ** -127``, which an fma without flush-to-zero
  keeps exactly): no fp16 -> fp32 conversion and no table. The activations arrive as float32
  times ``2 ** 100`` (written so by ``_route`` and by mlp1) so products stay normal floats; ``2 ** 26``
  is folded into the block scale, built as float32 bits with exponent field ``scale + 26``
  (bytes above 228 would overflow; checkpoints sit near 127). The weight bytes are in the
  engine's layout (``s E E M e e m S``, mxfp4.to_engine_layout);
- activations come in nibble order (``[G, 8 nibbles, 4 words]``: the 4 values a thread needs for
  one nibble position are contiguous), so one 8-byte load serves a row's 4 words, and each thread
  holds several rows so that load is shared;
- partial sums stay per (row, group) in registers; the cross-thread reduction happens once at
  the end, not once per loop step.

mlp1 fuses bias + clamped SwiGLU and stores the hidden vector in nibble order for mlp2; mlp2
fuses bias and the routing weight.

*Half products* (bf16 / fp16 models on the GPU, :func:`half_ok`): the float32 arithmetic above
spends ~4.9 instructions per weight value, and at batch 1 the GEMV is bound by instruction
issue, not by memory. Instead an inline-PTX block (``ptx.py``, executed on the CPU by
tests/engine/test_gptoss_ptx.py) takes a whole 32-value group (4 words). The engine's byte
layout puts each code's ``e e m`` where e5m2's exponent ends and its mantissa begins: a word's 4
low codes become e5m2 bytes ``s 0 0 0 e e m 0`` (the value times ``2 ** -14``) by one mask, its
4 high codes by two shifts and two masks (5 instructions; the checkpoint's layout took 7 to make
e4m3 bytes and 4 conversions: the loop's batch-8 step 4.9% slower, run 144), and each byte pair
becomes an fp16x2 by placing the bytes high (4 ``prmt``: e5m2 is the top half of fp16). 16
chained ``fma.rn.f16x2`` multiply them with activations stored as fp16 pairs (*pair order*,
``[G, 4 pairs, 4 words]`` int32; a word's pairs are its values (0, 2), (4, 6), (1, 3), (5, 7),
as the bytes yield them), and the two halves are summed in float32, scaled once per group. 16
products are summed per fp16 lane, each step rounded to 2 ** -11 relative: the layer's output
lands about one bf16 rounding from float64 (bounded in the GPU tests), the size of the roundings
the bf16 PyTorch path makes itself. So that fp16 products stay finite, and normal for all but
the smallest activations (below 2 ** -13 of the largest: fp16 subnormals, exact to 2 ** -24),
activations are scaled by a power of two (largest value in [2 ** 14, 2 ** 15): 16 products of
codes <= 6 * 2 ** -14 stay under 192): per token from its largest value (the router kernel holds
the whole row), and for mlp2 from the SwiGLU clamp, which bounds the hidden vector; the exponent
goes into the block scale like ``2 ** 26`` above. Half products keep three register slots of
weights, scales and activations, refilled three steps ahead (:func:`_half_slots`), or go through
the compiler's pipeline (``STAGES``); float32 products load weights ``AHEAD`` steps in front.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import pdl
from .fused import _add_normed, norm_warps
from .pdl import begin_if
from .ptx import group_dot_asm

X_SCALE = 2.0**100  # activations times this; the block scale carries 2 ** 26 (see above)
X_EXP = 26  # float32 products: added to the block scale's exponent byte (the 2 ** 26 above)
_TL = {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16, torch.float32: tl.float32}


@triton.jit
def _nibble_order(i):
    """Natural index ``i`` within a row -> its position in nibble order."""
    r = i % 32
    return (i - r) + (r % 8) * 4 + r // 8


@triton.jit
def _pair_order(i):
    """Natural index ``i`` within a row -> its fp16 position in pair order: value ``q = i % 8``
    of word ``w = i // 8`` is in pair ``2 * (q % 2) + q // 4``, low half for even ``q // 2``
    (the pairs (0, 2), (4, 6), (1, 3), (5, 7): see ptx.group_dot_asm)."""
    w = i // 8
    q = i % 8
    return ((w // 4) * 16 + (2 * (q % 2) + q // 4) * 4 + w % 4) * 2 + (q // 2) % 2


_GROUP_ASM = tl.constexpr(group_dot_asm())


@triton.jit
def _pairs_at(x_row, j, start, k_hi, BLOCK_G: tl.constexpr, MASKED: tl.constexpr):
    """The fp16 activation pairs of the loop step at word ``start`` (with ``MASKED``, zeros past
    ``k_hi``): 4 tensors ``[1, 4 * BLOCK_G]`` int32, pair ``p`` of each word in the ``p``-th.
    The pairs (p, word) sit at 4 * p + word within a group (16 pairs), so for each p a thread's
    4 words are one 16-byte load (4 loads per group, not 16)."""
    x_ptr = x_row + start * 4
    off = tl.max_contiguous(tl.multiple_of((j // 4) * 16 + j % 4, [4]), [4])
    if MASKED:
        ok = (start + j) < k_hi
        x0 = tl.load(x_ptr + off, mask=ok, other=0)[None, :]
        x1 = tl.load(x_ptr + 4 + off, mask=ok, other=0)[None, :]
        x2 = tl.load(x_ptr + 8 + off, mask=ok, other=0)[None, :]
        x3 = tl.load(x_ptr + 12 + off, mask=ok, other=0)[None, :]
    else:
        x0 = tl.load(x_ptr + off)[None, :]
        x1 = tl.load(x_ptr + 4 + off)[None, :]
        x2 = tl.load(x_ptr + 8 + off)[None, :]
        x3 = tl.load(x_ptr + 12 + off)[None, :]
    return x0, x1, x2, x3


@triton.jit
def _group_dot(w, xa, xb, xc, xd, BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr):
    """Half products: ``w [BLOCK_N, 4 * BLOCK_G]`` words times the pairs from :func:`_pairs_at`,
    per (row, group) as float32 times 2 ** -14."""
    # Each thread holds a group's 4 words (one 16-byte load): splitting them costs nothing.
    w0, w1, w2, w3 = _words(w, BLOCK_N, BLOCK_G)
    x0 = _words(xa, 1, BLOCK_G)
    x1 = _words(xb, 1, BLOCK_G)
    x2 = _words(xc, 1, BLOCK_G)
    x3 = _words(xd, 1, BLOCK_G)
    return tl.inline_asm_elementwise(
        _GROUP_ASM, "=r" + ",r" * 20,
        [w0, w1, w2, w3,
         x0[0], x1[0], x2[0], x3[0], x0[1], x1[1], x2[1], x3[1],
         x0[2], x1[2], x2[2], x3[2], x0[3], x1[3], x2[3], x3[3]],
        dtype=tl.float32, is_pure=True, pack=1,
    )  # fmt: skip


@triton.jit
def _half_step(acc, w, s, xa, xb, xc, xd, x_exp, BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr):
    """``acc`` plus one loop step's half products, scaled per group."""
    part = _group_dot(w, xa, xb, xc, xd, BLOCK_N, BLOCK_G)
    return acc + part * ((s.to(tl.int32) + x_exp) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _scales_at(s_e, s_off, n_ok, gl, start, k_hi):
    """The block scales (one byte per row and group) of the loop step at word ``start``."""
    return tl.load(s_e + s_off + start // 4, mask=n_ok[:, None] & ((start + gl * 4) < k_hi)[None, :], other=0)


@triton.jit
def _words_at(w_e, w_off, n_ok, j, start, k_hi):
    """The weight words of one loop step starting at word ``start`` (zeros past ``k_hi``)."""
    # Past L1 (".cg"): each weight byte is read once, and the activations, which every program
    # of a token re-reads, stay in L1 (the sweep measured no change either way).
    return tl.load(w_e + w_off + start, mask=n_ok[:, None] & ((start + j) < k_hi)[None, :], other=0, cache_modifier=".cg")


@triton.jit
def _words(w, ROWS: tl.constexpr, BLOCK_G: tl.constexpr):
    """``w [ROWS, 4 * BLOCK_G]`` -> its 4 words of each group, each ``[ROWS, BLOCK_G]``."""
    wa, wb = tl.split(tl.reshape(w, [ROWS, BLOCK_G, 2, 2]))
    w0, w2 = tl.split(wa)
    w1, w3 = tl.split(wb)
    return w0, w1, w2, w3


@triton.jit
def _dot32(w, x_ptrs, j_ok):
    """float32 mode: word ``w``'s 8 values times 8 float32 activations (nibble order, times
    X_SCALE; ``x_ptrs`` at each word's nibble 0), as float32 times ``2 ** -26``."""
    part = tl.zeros(w.shape, dtype=tl.float32)
    for p in tl.static_range(4):
        # Values p and p + 4 (bytes p // 2 and p // 2 + 2, 16 bits apart: each shift serves
        # both) as a bf16 pair, e e m to bits 6..8 and the sign to 15 of each half; a bf16's
        # bits are the top half of the float32 with the same value. Byte layout: mxfp4.py.
        if p == 0:  # low codes: e e m at byte bits 3..1, sign at 7
            mag, sign = w << 5, w << 8
        elif p == 1:  # high codes: e e m at byte bits 6..4, sign at 0
            mag, sign = w << 2, w << 15
        elif p == 2:
            mag, sign = w >> 3, w
        else:
            mag, sign = w >> 6, w << 7
        pair16 = (mag & 0x01C001C0) | (sign & -2147450880)  # 0x80008000
        lo = (pair16 << 16).to(tl.float32, bitcast=True)
        hi = (pair16 & -65536).to(tl.float32, bitcast=True)  # 0xFFFF0000
        x_lo = tl.load(x_ptrs + p * 4, mask=j_ok, other=0.0)
        x_hi = tl.load(x_ptrs + (p + 4) * 4, mask=j_ok, other=0.0)
        part += lo * x_lo
        part += hi * x_hi
    return part


@triton.jit
def _gemv_input(x, HALF: tl.constexpr):
    """A token's row ``x [BLOCK_H]`` (float32, zeros past H) as the GEMV reads it, and the
    exponent ``e`` that half products carry: fp16 times ``2 ** (14 - e)``, else float32 times
    X_SCALE (and 0)."""
    if HALF:
        # e = floor(log2(max |x|)): times 2 ** (14 - e) the largest value lands in [2 ** 14, 2 ** 15).
        top = tl.max(tl.abs(x), axis=0)
        x_exp = tl.maximum(((top.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127, -113)
        xn = (x * ((141 - x_exp) << 23).to(tl.float32, bitcast=True)).to(tl.float16)
    else:
        x_exp = 0
        xn = x * 1.2676506002282294e30  # X_SCALE
    return xn, x_exp


@triton.jit
def _store_gemv_input(xn_ptr, xe_ptr, t, H, h, h_ok, xn, x_exp, write_exp, HALF: tl.constexpr):
    """Store :func:`_gemv_input`'s values at natural indices ``h`` (where ``h_ok``) in the
    GEMV's order, and with ``write_exp`` the exponent."""
    if HALF:
        tl.store(xn_ptr + t * H + _pair_order(h), xn, mask=h_ok)
        tl.store(xe_ptr + t, x_exp, mask=write_exp)  # the sums carry 2 ** -e: the block scale gets it back
    else:
        tl.store(xn_ptr + t * H + _nibble_order(h), xn, mask=h_ok)


@triton.jit
def _top_k(lg, e, experts_ptr, weights_ptr, t, K: tl.constexpr, BLOCK_K: tl.constexpr):
    """:func:`_top_k_of` stored at row ``t`` of ``experts`` and ``weights [T, K]``."""
    top_i, p, kk = _top_k_of(lg, e, K, BLOCK_K)
    tl.store(experts_ptr + t * K + kk, top_i, mask=kk < K)
    tl.store(weights_ptr + t * K + kk, p, mask=kk < K)


@triton.jit
def _pick(logits_ptr, t, j, E, K: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr):
    """The ``j``-th of token ``t``'s top-k experts and its routing weight, from the router's
    logits ``[T, E]``: the same arithmetic as the router's own choice (:func:`_top_k_of`)."""
    e = tl.arange(0, BLOCK_E)
    lg = tl.load(logits_ptr + t * E + e, mask=e < E, other=float("-inf"))
    top_i, p, kk = _top_k_of(lg, e, K, BLOCK_K)
    return tl.sum(tl.where(kk == j, top_i, 0), axis=0), tl.sum(tl.where(kk == j, p, 0.0), axis=0)


@triton.jit
def _top_k_of(lg, e, K: tl.constexpr, BLOCK_K: tl.constexpr):
    """Experts ``[BLOCK_K]`` (k rounds of max / first index of the max) and the softmax of their
    logits, from ``lg [BLOCK_E]`` float32 (-inf where ``e`` is no expert); entries past ``K``
    are padding. Also returns the index vector."""
    kk = tl.arange(0, BLOCK_K)
    top_v = tl.full([BLOCK_K], float("-inf"), tl.float32)
    top_i = tl.zeros([BLOCK_K], tl.int32)
    for i in tl.static_range(K):
        m = tl.max(lg, axis=0)
        idx = tl.min(tl.where(lg == m, e, lg.shape[0]), axis=0)
        top_v = tl.where(kk == i, m, top_v)
        top_i = tl.where(kk == i, idx, top_i)
        lg = tl.where(e == idx, float("-inf"), lg)
    p = tl.exp(top_v - tl.max(top_v, axis=0))
    return top_i, p / tl.sum(p, axis=0), kk


@triton.jit
def _route(
    logits_ptr, x_ptr, experts_ptr, weights_ptr, xn_ptr,  # logits [T, PARTS, E] partial sums
    xe_ptr,  # HALF: [T] int32, each token's exponent (for the block scale)
    E, H,
    K: tl.constexpr, PARTS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_H: tl.constexpr,
    HALF: tl.constexpr,  # x as fp16 in pair order (else float32 in nibble order)
    PDL: tl.constexpr,
    EARLY: tl.constexpr,  # x read (and converted) before the PDL wait: only the logits are new
):  # fmt: skip
    begin_if(not EARLY, PDL)
    t = tl.program_id(0).to(tl.int64)
    h = tl.arange(0, BLOCK_H)
    x = tl.load(x_ptr + t * H + h, mask=h < H, other=0.0).to(tl.float32)
    xn, x_exp = _gemv_input(x, HALF)
    begin_if(EARLY, PDL)
    e = tl.arange(0, BLOCK_E)
    lg = tl.zeros([BLOCK_E], dtype=tl.float32)
    for p in tl.static_range(PARTS):
        lg += tl.load(logits_ptr + (t * PARTS + p) * E + e, mask=e < E, other=0.0).to(tl.float32)
    # Rounded like the router's output in the PyTorch path (a linear layer in x's dtype).
    lg = tl.where(e < E, lg.to(x_ptr.dtype.element_ty).to(tl.float32), float("-inf"))
    _top_k(lg, e, experts_ptr, weights_ptr, t, K, BLOCK_K)
    _store_gemv_input(xn_ptr, xe_ptr, t, H, h, h < H, xn, x_exp, t >= 0, HALF)


@triton.jit
def _gate_route(
    x_ptr, gate_w_ptr, gate_b_ptr,  # x [T, H]; the router's weight [E, H] and bias [E]
    logits_ptr,  # [T, E] float32 scratch: each program writes its experts' logits
    count_ptr,  # [T] int32, zero between launches: a token's programs done (the last resets it)
    experts_ptr, weights_ptr, xn_ptr, xe_ptr,  # as _route's
    d_ptr, norm_ptr, x_out_ptr, eps,  # D_ROWS > 0: the residual delta [T, D_ROWS, H], norm scale [H], x + delta out
    E, H,
    K: tl.constexpr, EPP: tl.constexpr,  # experts per program
    BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_H: tl.constexpr, HALF: tl.constexpr,
    CONVERT: tl.constexpr,  # write x in the GEMV's order (False: experts and weights only)
    D_ROWS: tl.constexpr,  # > 0: the router's input is RMSNorm(x + delta), computed here (fused.add_rms_norm's)
    PDL: tl.constexpr, EARLY: tl.constexpr,  # EARLY: the router's weights before the PDL wait
    PICK: tl.constexpr = True,  # the last program picks the experts (False: the logits are the output)
):  # fmt: skip
    begin_if(not EARLY, PDL)
    t = tl.program_id(0).to(tl.int64)
    pid = tl.program_id(1)
    programs = tl.num_programs(1)
    h = tl.arange(0, BLOCK_H)
    e = pid * EPP + tl.arange(0, EPP)
    # Constants: with EARLY they arrive while the kernel before this one finishes.
    w = tl.load(gate_w_ptr + e[:, None] * H + h[None, :], mask=(e < E)[:, None] & (h < H)[None, :], other=0.0)
    bias = tl.load(gate_b_ptr + e, mask=e < E, other=0.0)
    if D_ROWS > 0:
        norm = tl.load(norm_ptr + h, mask=h < H, other=0.0).to(tl.float32)
    begin_if(EARLY, PDL)
    share = tl.cdiv(H, programs)
    mine = (h >= pid * share) & (h < (pid + 1) * share) & (h < H)
    x = tl.load(x_ptr + t * H + h, mask=h < H, other=0.0).to(tl.float32)
    if D_ROWS > 0:  # every program adds and normalises the whole row (one L2 round trip, as x alone)
        x = _add_normed(x, d_ptr + t * D_ROWS * H, h, h < H, norm, H, eps, D_ROWS, x_out_ptr + t * H, mine)
    lg = tl.sum(w.to(tl.float32) * x[None, :], axis=1) + bias.to(tl.float32)
    # Rounded like the router's output in the PyTorch path (a linear layer in x's dtype).
    tl.store(logits_ptr + t * E + e, lg.to(x_ptr.dtype.element_ty).to(tl.float32), mask=e < E)
    if CONVERT:  # each program converts its share of the row (every one finds the same exponent)
        xn, x_exp = _gemv_input(x, HALF)
        _store_gemv_input(xn_ptr, xe_ptr, t, H, h, mine, xn, x_exp, pid == 0, HALF)
    if PICK:
        # The last program of a token to finish picks its experts. The barrier puts every
        # thread's logit store before the atomic's release; its acquire makes the others'
        # visible here.
        tl.debug_barrier()
        done = tl.atomic_add(count_ptr + t, 1, sem="acq_rel")
        if done == programs - 1:
            tl.store(count_ptr + t, 0)  # ready for the next launch
            ee = tl.arange(0, BLOCK_E)
            lg_all = tl.load(logits_ptr + t * E + ee, mask=ee < E, other=float("-inf"), cache_modifier=".cg")
            _top_k(lg_all, ee, experts_ptr, weights_ptr, t, K, BLOCK_K)


@triton.jit
def _window(k_lo, k_hi, i, BLOCK_G: tl.constexpr):
    """The first word of loop step ``i``'s window of ``4 * BLOCK_G`` words: the step's own, or
    for a last step that would run past ``k_hi`` the last whole window before ``k_hi``. So
    every load stays inside the row and needs no mask (no zeroed registers, no compares); the
    window's groups before the step belong to the step before and count zero
    (:func:`_window_step`). In whole groups, so that the compiler sees 16-byte alignment."""
    return 4 * tl.minimum(k_lo // 4 + i * BLOCK_G, k_hi // 4 - BLOCK_G)


@triton.jit
def _slot_weights(w_e, w_off, s_e, s_off, k_lo, k_hi, i, BLOCK_G: tl.constexpr):
    """Step ``i``'s weight words and block scales (constants: may be read before the PDL wait)."""
    win = _window(k_lo, k_hi, i, BLOCK_G)
    # Past L1 (".cg"): each weight byte is read once; the activations stay in L1.
    return tl.load(w_e + w_off + win, cache_modifier=".cg"), tl.load(s_e + s_off + win // 4)


@triton.jit
def _slot_pairs(x_row, j, k_lo, k_hi, i, BLOCK_G: tl.constexpr):
    """Step ``i``'s activation pairs (:func:`_pairs_at` at its window, unmasked)."""
    return _pairs_at(x_row, j, _window(k_lo, k_hi, i, BLOCK_G), k_hi, BLOCK_G, False)


@triton.jit
def _window_step(acc, w, s, xa, xb, xc, xd, x_exp, k_lo, k_hi, i, BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr):
    """:func:`_half_step` for step ``i``'s window: its groups before the step count zero."""
    win = _window(k_lo, k_hi, i, BLOCK_G)
    own = (win + tl.arange(0, BLOCK_G) * 4) >= k_lo + i * (4 * BLOCK_G)
    part = _group_dot(w, xa, xb, xc, xd, BLOCK_N, BLOCK_G)
    scale = ((s.to(tl.int32) + x_exp) << 23).to(tl.float32, bitcast=True)
    return acc + part * tl.where(own[None, :], scale, 0.0)


@triton.jit
def _half_slots(
    acc, w_e, w_off, s_e, s_off, x_row, j, x_exp, k_lo, k_hi,
    BLOCK_N: tl.constexpr, BLOCK_G: tl.constexpr, PDL: tl.constexpr, EARLY: tl.constexpr,
):  # fmt: skip
    """The half-products loop over ``[k_lo, k_hi)``: three register slots, each holding one
    step's weights, scales *and* activation pairs, each refilled three steps ahead right after
    its step's arithmetic. Unrolled by three, so no slot's registers move from one to another
    (the rotation of two buffers had cost 32 moves a step), and with the activations in the
    slots: loaded at their step, their L1 round trips had stalled every step (the weights-only
    read of the same tiles took 10.4 us, adding the activation loads 13.0; this loop brought
    the batch-1 mlp1 from 15.7 to 14.5 us and mlp2 from 9.3 to 8.7 on the H200,
    results_engine_gpu.txt run 92)."""
    n = tl.cdiv(k_hi - k_lo, 4 * BLOCK_G)
    w_a, s_a = _slot_weights(w_e, w_off, s_e, s_off, k_lo, k_hi, 0, BLOCK_G)
    w_b, s_b = _slot_weights(w_e, w_off, s_e, s_off, k_lo, k_hi, 1, BLOCK_G)
    w_c, s_c = _slot_weights(w_e, w_off, s_e, s_off, k_lo, k_hi, 2, BLOCK_G)
    begin_if(EARLY, PDL)  # the activations come from the kernel before
    xa0, xa1, xa2, xa3 = _slot_pairs(x_row, j, k_lo, k_hi, 0, BLOCK_G)
    xb0, xb1, xb2, xb3 = _slot_pairs(x_row, j, k_lo, k_hi, 1, BLOCK_G)
    xc0, xc1, xc2, xc3 = _slot_pairs(x_row, j, k_lo, k_hi, 2, BLOCK_G)
    for i in range(0, n, 3):
        acc = _window_step(acc, w_a, s_a, xa0, xa1, xa2, xa3, x_exp, k_lo, k_hi, i, BLOCK_N, BLOCK_G)
        if i + 3 < n:
            w_a, s_a = _slot_weights(w_e, w_off, s_e, s_off, k_lo, k_hi, i + 3, BLOCK_G)
            xa0, xa1, xa2, xa3 = _slot_pairs(x_row, j, k_lo, k_hi, i + 3, BLOCK_G)
        if i + 1 < n:
            acc = _window_step(acc, w_b, s_b, xb0, xb1, xb2, xb3, x_exp, k_lo, k_hi, i + 1, BLOCK_N, BLOCK_G)
            if i + 4 < n:
                w_b, s_b = _slot_weights(w_e, w_off, s_e, s_off, k_lo, k_hi, i + 4, BLOCK_G)
                xb0, xb1, xb2, xb3 = _slot_pairs(x_row, j, k_lo, k_hi, i + 4, BLOCK_G)
        if i + 2 < n:
            acc = _window_step(acc, w_c, s_c, xc0, xc1, xc2, xc3, x_exp, k_lo, k_hi, i + 2, BLOCK_N, BLOCK_G)
            if i + 5 < n:
                w_c, s_c = _slot_weights(w_e, w_off, s_e, s_off, k_lo, k_hi, i + 5, BLOCK_G)
                xc0, xc1, xc2, xc3 = _slot_pairs(x_row, j, k_lo, k_hi, i + 5, BLOCK_G)
    return acc


@triton.jit
def _pair_route(
    experts_ptr, route_ptr, logits_ptr, E, pair, first_tile, SWIGLU: tl.constexpr,
    PICK: tl.constexpr, TOPK: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """A GEMV program's expert (int64) and routing weight (mlp2 only; 0 for mlp1): read, or
    with ``PICK`` picked from the logits, mlp1's programs on the first row tile writing the
    choice down for callers that read it."""
    if PICK:
        e_i, route = _pick(logits_ptr, pair // TOPK, pair % TOPK, E, TOPK, BLOCK_E, BLOCK_K)
        if SWIGLU:
            tl.store(experts_ptr + pair, e_i, mask=first_tile)
            tl.store(route_ptr + pair, route, mask=first_tile)
        return e_i.to(tl.int64), route
    else:
        route = 0.0
        if not SWIGLU:
            route = tl.load(route_ptr + pair).to(tl.float32)
        return tl.load(experts_ptr + pair).to(tl.int64), route


@triton.jit
def _gemv(
    x_ptr, x_stride,  # float32 [R, K] times X_SCALE in nibble order; HALF: int32 [R, K / 2] pairs
    words_ptr, scales_ptr, bias_ptr,  # [E, N, G, 4] int32, [E, N, G] u8, [E, N]
    experts_ptr, route_ptr,  # [P] expert per pair, [P] routing weight per pair (PICK: written by mlp1)
    logits_ptr, E,  # PICK: the router's logits [T, E], from which each program picks its pair's expert
    out_ptr, out_stride,  # [P, N / 2] in nibble (HALF: pair) order (SWIGLU) or [P, SLICES, N]
    N, G, alpha, limit,  # G = K // 32
    slice_steps,  # loop steps (4 * BLOCK_G words each) of K per program along grid axis 2
    xe_ptr, x_exp,  # the block scale's exponent byte gets x_exp added, or xe[row] (ROW_EXP)
    h_scale,  # HALF and SWIGLU: the hidden vector is stored times this power of two
    X_DIV: tl.constexpr,  # input row = pair // X_DIV (top-k for mlp1, 1 for mlp2)
    SWIGLU: tl.constexpr,
    HIDDEN_DTYPE: tl.constexpr,  # the hidden vector is rounded to the activation dtype
    BLOCK_N: tl.constexpr,
    BLOCK_G: tl.constexpr,
    HALF: tl.constexpr,  # fp16 products (inline PTX: the GPU only)
    ROW_EXP: tl.constexpr,
    AHEAD: tl.constexpr,  # weight loads this many loop steps ahead (1 or 2)
    STAGES: tl.constexpr,  # > 0 with HALF: the compiler's pipeline instead (async copies to shared memory)
    PDL: tl.constexpr,
    EARLY: tl.constexpr,  # mlp2: experts and first weights read before the PDL wait (see pdl.py)
    PICK: tl.constexpr = False,  # each program picks its pair's expert from the logits (see moe_gemv)
    TOPK: tl.constexpr = 1, BLOCK_E: tl.constexpr = 1, BLOCK_K: tl.constexpr = 1,  # PICK: k, padded E and k
):  # fmt: skip
    begin_if(not EARLY, PDL)
    pair = tl.program_id(0)
    nb = tl.program_id(1)
    sl = tl.program_id(2)  # slice of K: partial sums, summed by the consumer (mlp2 only)
    # In whole steps, so that the compiler can prove the weight loads 16-byte aligned (it then
    # gives each thread 4 consecutive words: one vector load).
    k_lo = sl * slice_steps * (4 * BLOCK_G)
    k_hi = tl.minimum(k_lo + slice_steps * (4 * BLOCK_G), G * 4)
    e, route = _pair_route(experts_ptr, route_ptr, logits_ptr, E, pair, nb == 0, SWIGLU, PICK, TOPK, BLOCK_E, BLOCK_K)
    row = pair // X_DIV
    rows = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = rows < N
    # Words along one row are contiguous: a [BLOCK_N, 4 * BLOCK_G] tile puts consecutive threads
    # on consecutive 16-byte chunks of a row (coalesced) and repeats rows within a thread, so a
    # thread's activation loads serve several rows.
    WORDS: tl.constexpr = 4 * BLOCK_G
    j = tl.arange(0, WORDS)
    w_e = words_ptr + e * N * G * 4
    s_e = scales_ptr + e * N * G
    row_w = rows * (G * 4)  # [BLOCK_N] first word of each row within the expert (int32 is enough)
    x_row = x_ptr + row.to(tl.int64) * x_stride
    x_j = (j // 4) * 32 + j % 4  # word j's nibble-0 activation, in nibble order
    gl = tl.arange(0, BLOCK_G)
    if ROW_EXP:
        x_exp = tl.load(xe_ptr + row)
    if HALF:  # sums per (row, group): one scale per group (the codes' 2 ** -14 and the
        # activations' 2 ** 14 cancel: the block scale takes only the activations' exponent)
        acc = tl.zeros([BLOCK_N, BLOCK_G], dtype=tl.float32)
    else:
        acc = tl.zeros([BLOCK_N, WORDS], dtype=tl.float32)
    if HALF and STAGES == 0:
        # No load masks (see _window): rows past N read row N - 1, whose sums are not stored.
        rows_in = tl.minimum(rows, N - 1)
        w_off = tl.max_contiguous(tl.multiple_of(rows_in[:, None] * (G * 4) + j[None, :], [1, 4]), [1, 4])
        s_off = rows_in[:, None] * G + gl[None, :]
        acc = _half_slots(acc, w_e, w_off, s_e, s_off, x_row, j, x_exp, k_lo, k_hi, BLOCK_N, BLOCK_G, PDL, EARLY)
    elif HALF:
        # The compiler's software pipeline (``tl.range`` with stages: asynchronous copies into
        # shared memory, activations too): the batch-8 step measured 3-4% faster than loads in
        # registers (results_engine_gpu.txt runs 23, 26, 27). The scales are loaded one step
        # ahead by hand: the pipeline leaves byte loads out.
        w_off = tl.max_contiguous(tl.multiple_of(row_w[:, None] + j[None, :], [1, 4]), [1, 4])
        s_off = rows[:, None] * G + gl[None, :]
        s_a = _scales_at(s_e, s_off, n_ok, gl, k_lo, k_hi)
        begin_if(EARLY, PDL)
        for w0 in tl.range(k_lo, k_hi, WORDS, num_stages=STAGES):
            w = _words_at(w_e, w_off, n_ok, j, w0, k_hi)
            s = s_a
            s_a = _scales_at(s_e, s_off, n_ok, gl, w0 + WORDS, k_hi)
            xa, xb, xc, xd = _pairs_at(x_row, j, w0, k_hi, BLOCK_G, True)
            acc = _half_step(acc, w, s, xa, xb, xc, xd, x_exp, BLOCK_N, BLOCK_G)
    else:
        # float32 products: weights loaded AHEAD loop steps in front of the arithmetic.
        w_off = tl.max_contiguous(tl.multiple_of(row_w[:, None] + j[None, :], [1, 4]), [1, 4])
        w_a = _words_at(w_e, w_off, n_ok, j, k_lo, k_hi)
        w_b = _words_at(w_e, w_off, n_ok, j, k_lo + WORDS, k_hi) if AHEAD == 2 else w_a
        begin_if(EARLY, PDL)
        for w0 in range(k_lo, k_hi, WORDS):
            w = w_a
            w_next = _words_at(w_e, w_off, n_ok, j, w0 + AHEAD * WORDS, k_hi)
            if AHEAD == 2:
                w_a, w_b = w_b, w_next
            else:
                w_a = w_next
            j_ok = (w0 + j) < k_hi
            s = tl.load(s_e + (row_w[:, None] + w0 + j[None, :]) // 4, mask=n_ok[:, None] & j_ok[None, :], other=0)
            part = _dot32(w, x_row + w0 * 8 + x_j[None, :], j_ok[None, :])
            acc += part * ((s.to(tl.int32) + x_exp) << 23).to(tl.float32, bitcast=True)
    y = tl.sum(acc, axis=1) + tl.load(bias_ptr + e * N + rows, mask=n_ok & (sl == 0), other=0.0).to(tl.float32)
    if SWIGLU:
        gate, lin = tl.split(tl.reshape(y, [BLOCK_N // 2, 2]))
        gate = tl.minimum(gate, limit)
        lin = tl.minimum(tl.maximum(lin, -limit), limit)
        h = gate * tl.sigmoid(alpha * gate) * (lin + 1.0)
        cols = nb * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
        h = h.to(HIDDEN_DTYPE).to(tl.float32)
        if HALF:
            dest = out_ptr + pair * out_stride + _pair_order(cols)
            tl.store(dest, (h * h_scale).to(tl.float16), mask=cols < N // 2)
        else:
            dest = out_ptr + pair * out_stride + _nibble_order(cols)
            tl.store(dest, h * 1.2676506002282294e30, mask=cols < N // 2)  # X_SCALE
    else:
        y = y * route
        dest = out_ptr + (pair * tl.num_programs(2) + sl) * out_stride + rows
        tl.store(dest, y.to(out_ptr.dtype.element_ty), mask=n_ok)


@dataclass(frozen=True, slots=True)
class GemvInput:
    """Activations as :func:`moe_gemv` reads them (made by :func:`route`)."""

    values: torch.Tensor  # [T, H]: float32 times X_SCALE in nibble order, or fp16 in pair order
    exps: torch.Tensor | None  # half products: [T] int32 e, the values being x * 2 ** (14 - e)


def hidden_exp(alpha: float, limit: float) -> int | None:
    """``floor(log2)`` of a bound on the clamped SwiGLU's output, or None when it has none."""
    if not (math.isfinite(limit) and limit > 0 and alpha > 0):
        return None
    # The gate is clamped above only; below, gate * sigmoid(alpha * gate) >= -0.2785 / alpha.
    return math.floor(math.log2(max(limit, 0.3 / alpha) * (limit + 1)))


def half_ok(x: torch.Tensor, alpha: float, limit: float) -> bool:
    """Can the GEMV for ``x``'s tokens run on half products? (bf16 / fp16 on the GPU, and a
    SwiGLU clamp that bounds mlp2's input; float32 models keep float32 products.)"""
    return (
        x.is_cuda and x.dtype in (torch.bfloat16, torch.float16)
        and os.environ.get("TRITON_INTERPRET") != "1" and hidden_exp(alpha, limit) is not None
    )  # fmt: skip


def _router_outputs(
    x: torch.Tensor, k: int, half: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """What the router kernels write for ``x [T, H]``: experts ``[T, k]``, weights ``[T, k]``,
    ``x`` in the GEMV's order and, for half products, the exponents ``[T]``."""
    t, h = x.shape
    experts = torch.empty(t, k, device=x.device, dtype=torch.int32)
    weights = torch.empty(t, k, device=x.device, dtype=torch.float32)
    xn = torch.empty(t, h, device=x.device, dtype=torch.float16 if half else torch.float32)
    exps = torch.empty(t, device=x.device, dtype=torch.int32) if half else None
    return experts, weights, xn, exps


def route(
    logits: torch.Tensor, x: torch.Tensor, k: int, *, half: bool = False, x_ready: bool = False
) -> tuple[torch.Tensor, torch.Tensor, GemvInput]:
    """Router logits ``[T, E]`` (or float32 partial sums ``[T, P, E]``) and ``x [T, H]`` ->
    experts ``[T, k]`` int32, softmax weights ``[T, k]`` float32, and ``x`` as :func:`moe_gemv`
    reads it (``half``: for half products, see :func:`half_ok`). ``x_ready``: ``x`` was not
    written by the kernel launched just before (the logits were), so with programmatic
    dependent launch the kernel reads and converts it before it waits."""
    if logits.dim() == 2:
        logits = logits[:, None]
    t, parts, num_experts = logits.shape
    h = x.shape[1]
    experts, weights, xn, exps = _router_outputs(x, k, half)
    block_h = triton.next_power_of_2(h)
    _route[(t,)](
        logits.contiguous(), x.contiguous(), experts, weights, xn, exps if half else experts, num_experts, h,
        K=k, PARTS=parts, BLOCK_E=triton.next_power_of_2(num_experts), BLOCK_K=triton.next_power_of_2(k),
        BLOCK_H=block_h, HALF=half, num_warps=4 if block_h >= 2048 else 1,
        **pdl.launch(x.device, early=x_ready),
    )  # fmt: skip
    return experts, weights, GemvInput(xn, exps)


# Per router weight (device, address): zeroed counters that every _gate_route launch leaves at
# zero, so launches that follow one another (one stream, as a model's layers run) share them. A
# CUDA graph keeps the address it captured: counters outgrown by a larger batch stay allocated.
_COUNTERS: dict[tuple[torch.device, int], torch.Tensor] = {}
_OUTGROWN: list[torch.Tensor] = []


def _counters(weight: torch.Tensor, tokens: int) -> torch.Tensor:
    key = (weight.device, weight.data_ptr())
    count = _COUNTERS.get(key)
    if count is None or count.numel() < tokens:
        if count is not None:
            _OUTGROWN.append(count)
        count = _COUNTERS[key] = torch.zeros(max(tokens, 64), device=weight.device, dtype=torch.int32)
    return count


@dataclass(frozen=True, slots=True)
class ResidualNorm:
    """What comes before the router in a layer, folded into its launch: the router's input is
    ``RMSNorm(x + delta) * scale``, as ``fused.add_rms_norm`` computes it (same roundings)."""

    delta: torch.Tensor  # [T, H], or [T, R, H] float32 partial sums (summed over R first)
    scale: torch.Tensor  # [H]
    eps: float


def gate_route(
    x: torch.Tensor, gate_weight: torch.Tensor, gate_bias: torch.Tensor, k: int, *, half: bool = False
) -> tuple[torch.Tensor, torch.Tensor, GemvInput]:
    """:func:`route` with the router's linear layer in the same launch: ``x [T, H]`` times
    ``gate_weight [E, H]`` plus ``gate_bias [E]``, the logits rounded to ``x``'s dtype as a
    linear layer in that dtype rounds them. Up to 32 programs per token each take a few
    experts' logits and a share of ``x``'s conversion; the last of a token to finish picks its
    experts. With programmatic dependent launch the weights are read before the wait. One
    launch where the split-K linear layer and :func:`route` took two: the 20b step at batch 1
    0.02-0.09 ms faster, at batch 8 0.02-0.21 (results_engine_gpu.txt, runs 47-49, 51)."""
    experts, weights, xn, exps = _router_outputs(x, k, half)
    _launch_gate_route(x, gate_weight, gate_bias, k, experts, weights, xn, exps, half=half)
    return experts, weights, GemvInput(xn, exps)


def add_norm_gate_route(
    x: torch.Tensor, residual: ResidualNorm, gate_weight: torch.Tensor, gate_bias: torch.Tensor, k: int, *,
    half: bool = False, pick: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, GemvInput, torch.Tensor]:
    """``fused.add_rms_norm`` and :func:`gate_route` in one launch: ``x [T, H]`` plus
    ``residual.delta``, normalised, into the router. Returns ``x + delta``, what
    :func:`gate_route` returns and the logits ``[T, E]`` (float32, rounded to ``x``'s dtype).
    Every program of a token adds and normalises the whole row (the delta's rows cost the one
    L2 round trip that reading ``x`` cost), so the norm's own launch, and the wait for it,
    leave the step. Without ``pick`` the experts and weights are left for :func:`moe_gemv` to
    pick from the logits (and write)."""
    experts, weights, xn, exps = _router_outputs(x, k, half)
    x_out = torch.empty_like(x)
    logits = _launch_gate_route(x, gate_weight, gate_bias, k, experts, weights, xn, exps, half=half,
                                residual=residual, x_out=x_out, pick=pick)  # fmt: skip
    return x_out, experts, weights, GemvInput(xn, exps), logits


def gate_topk(
    x: torch.Tensor, gate_weight: torch.Tensor, gate_bias: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gate_route`'s experts ``[T, k]`` and weights ``[T, k]`` only, for the grouped
    GEMM (more pairs than the GEMV takes): one launch where the linear layer, top-k, softmax
    and casts took eight."""
    t = x.shape[0]
    experts = torch.empty(t, k, device=x.device, dtype=torch.int32)
    weights = torch.empty(t, k, device=x.device, dtype=torch.float32)
    _launch_gate_route(x, gate_weight, gate_bias, k, experts, weights, experts, experts, half=False, convert=False)
    return experts, weights


def _launch_gate_route(
    x: torch.Tensor, gate_weight: torch.Tensor, gate_bias: torch.Tensor, k: int, experts: torch.Tensor,
    weights: torch.Tensor, xn: torch.Tensor, exps: torch.Tensor | None, *, half: bool, convert: bool = True,
    residual: ResidualNorm | None = None, x_out: torch.Tensor | None = None, pick: bool = True,
) -> torch.Tensor:
    t, h = x.shape
    num_experts = gate_weight.shape[0]
    epp = triton.next_power_of_2(triton.cdiv(num_experts, 32))
    logits = torch.empty(t, num_experts, device=x.device, dtype=torch.float32)
    if residual is not None:
        d = residual.delta.contiguous()
        d_rows, eps, norm = d.numel() // x.numel(), residual.eps, residual.scale
    else:
        d, d_rows, eps, norm, x_out = x, 0, 0.0, gate_bias, x
    _gate_route[(t, triton.cdiv(num_experts, epp))](
        x.contiguous(), gate_weight.contiguous(), gate_bias, logits, _counters(gate_weight, t), experts, weights,
        xn, exps if half else experts, d, norm, x_out, eps, num_experts, h, K=k, EPP=epp,
        BLOCK_E=triton.next_power_of_2(num_experts), BLOCK_K=triton.next_power_of_2(k),
        BLOCK_H=triton.next_power_of_2(h), HALF=half, CONVERT=convert, D_ROWS=d_rows, PICK=pick,
        num_warps=norm_warps(h, d_rows) if d_rows > 0 else 4, **pdl.launch(x.device, early=True),
    )  # fmt: skip
    return logits


@dataclass(frozen=True, slots=True)
class GemvShape:
    """One launch shape of :func:`_gemv`."""

    block_n: int  # weight rows per program
    block_g: int  # 32-value groups per loop step (4 int32 words each)
    warps: int
    # float32 products: weight loads issued this many loop steps ahead (1 or 2; 3 and 4 measured
    # no better). Half products without stages always keep three slots (_half_slots).
    ahead: int = 2
    stages: int = 0  # > 0 (half products only): the compiler's software pipeline of this depth instead

    def __post_init__(self) -> None:
        # The kernel keeps one or two register buffers of weights: any other value would read
        # the wrong step, not fail.
        if self.ahead not in (1, 2) or self.stages < 0:
            raise ValueError(f"GemvShape: ahead must be 1 or 2 and stages >= 0, got {self}")

    def groups(self, g: int, half: bool) -> int:
        """``block_g`` for a K of ``g`` groups: the half-products slots read whole windows of
        ``block_g`` groups inside K (_window), so no more than K has."""
        if half and self.stages == 0:
            return min(self.block_g, 1 << (g.bit_length() - 1))
        return self.block_g


def moe_gemv(
    xn: GemvInput,  # from route()
    experts: torch.Tensor,  # [T, k] int32
    weights: torch.Tensor,  # [T, k] float32
    mlp1: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    mlp2: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    dtype: torch.dtype,  # the activations' dtype: hidden vector rounding and the result
    alpha: float,
    limit: float,
    shape1: GemvShape,
    shape2: GemvShape,
    programs2: int = 0,
    max_slices2: int = 4,
    partials: bool = False,
    logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each token through its top-k experts, weighted and summed: ``[T, H]`` in ``dtype``, or
    with ``partials`` float32 weighted partial sums ``[T, k * S, H]`` whose sum over dim 1 is
    that. ``S`` slices of mlp2's K (at most ``max_slices2``) bring mlp2's grid up to about
    ``programs2`` programs: at batch 1 its row tiles alone leave most SMs idle.

    With the router's ``logits [T, E]`` (from :func:`gate_route` with ``pick=False``), every
    program picks its pair's expert itself (the router's arithmetic: the same choice), and mlp1
    writes the choice into ``experts`` and ``weights``: the router then needs no last program
    that waits for the others, and mlp1 reads the logits where it read the experts."""
    t, k = experts.shape
    p = t * k
    b1, s1, bias1 = mlp1
    b2, s2, bias2 = mlp2
    x = xn.values
    n1, h = b1.shape[1], x.shape[1]
    inter = n1 // 2
    assert h % 32 == 0 and inter % 32 == 0, "MXFP4 rows are whole 32-value groups"
    flat = experts.reshape(-1).contiguous()
    route_w = weights.reshape(-1).contiguous()
    w1, w2 = b1.view(torch.int32), b2.view(torch.int32)  # [E, N, G, 4]
    half = xn.exps is not None
    if half:
        e2 = hidden_exp(alpha, limit)
        assert e2 is not None, "half products need a SwiGLU clamp (see half_ok)"
        hidden = torch.empty(p, inter, device=x.device, dtype=torch.float16)
        x1, x2 = x.view(torch.int32), hidden.view(torch.int32)  # fp16 pairs
        exps1, exp1, exp2, h_scale = xn.exps, 0, e2, 2.0 ** (14 - e2)
    else:
        hidden = torch.empty(p, inter, device=x.device, dtype=torch.float32)
        x1, x2 = x, hidden
        exps1, exp1, exp2, h_scale = experts, X_EXP, X_EXP, 1.0
    g1, g2 = shape1.groups(h // 32, half), shape2.groups(inter // 32, half)
    if logits is not None:
        e_count = logits.shape[1]
        pick = {"PICK": True, "TOPK": k, "BLOCK_E": triton.next_power_of_2(e_count),
                "BLOCK_K": triton.next_power_of_2(k)}  # fmt: skip
    else:
        logits, e_count, pick = route_w, 0, {}
    _gemv[(p, triton.cdiv(n1, shape1.block_n), 1)](
        x1, x1.stride(0), w1, s1, bias1, flat, route_w, logits, e_count, hidden, hidden.stride(0),
        n1, h // 32, alpha, limit, triton.cdiv(h // 32, g1), exps1, exp1, h_scale,
        X_DIV=k, SWIGLU=True, HIDDEN_DTYPE=_TL[dtype], BLOCK_N=shape1.block_n, BLOCK_G=g1,
        HALF=half, ROW_EXP=half, AHEAD=shape1.ahead, STAGES=shape1.stages, num_warps=shape1.warps,
        **pick, **pdl.launch(x.device, early=False),
    )  # fmt: skip
    tiles2 = p * triton.cdiv(h, shape2.block_n)
    steps = triton.cdiv(inter // 32, g2)  # loop steps along K
    slices = max(1, min(steps, max_slices2, triton.cdiv(programs2, tiles2))) if partials else 1
    slice_steps = triton.cdiv(steps, slices)
    slices = triton.cdiv(steps, slice_steps)
    y = torch.empty(p, slices, h, device=x.device, dtype=torch.float32)
    _gemv[(p, triton.cdiv(h, shape2.block_n), slices)](
        x2, x2.stride(0), w2, s2, bias2, flat, route_w, logits, e_count, y, h,
        h, inter // 32, alpha, limit, slice_steps, flat, exp2, 1.0,
        X_DIV=1, SWIGLU=False, HIDDEN_DTYPE=_TL[dtype], BLOCK_N=shape2.block_n, BLOCK_G=g2,
        HALF=half, ROW_EXP=False, AHEAD=shape2.ahead, STAGES=shape2.stages, num_warps=shape2.warps,
        **pick, **pdl.launch(x.device, early=True),
    )  # fmt: skip
    if partials:
        return y.view(t, k * slices, h)
    return y.view(t, k * slices, h).sum(1).to(dtype)
