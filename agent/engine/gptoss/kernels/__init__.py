"""Triton kernels for the gpt-oss engine's hot paths; the PyTorch code in ``model.py`` is the
fallback and the reference they are checked against.

- :func:`moe_layer`: router + MXFP4 expert matmuls that read the packed weights and dequantize
  in registers (no bf16 copy of the experts ever exists in GPU memory);
- :func:`attention_decode`: one-token attention with sinks and sliding windows over only the
  live part of the KV cache; :func:`attention_prefill`: the same for a chunk of queries (flash
  attention: no score tensor in memory).

``available(tensor)`` says whether a tensor can take the Triton path: a CUDA tensor with Triton
importable, or any tensor under ``TRITON_INTERPRET=1`` (CPU tests). ``OSS_AGENT_KERNELS=0``
turns every kernel off (the plain PyTorch path then runs everywhere). On Hopper and newer the
decode kernels launch as programmatic dependents (``pdl.py``; ``OSS_AGENT_PDL=0``: plainly).
"""

from __future__ import annotations

import functools
import os
import threading
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..kv_cache import KVCache, SeqCache
    from ..model import GptOssModel
    from ..sampling import GreedyTokens, StepTokens
    from ..weights import LayerWeights
    from .moe_gemv import GemvInput


@functools.cache
def _triton_ok() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def enabled() -> bool:
    return os.environ.get("OSS_AGENT_KERNELS", "1") != "0" and _triton_ok()


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def available(x: torch.Tensor) -> bool:
    """Can ``x`` (an activation) go through the Triton kernels?"""
    return (x.is_cuda or interpreting()) and enabled()


capture_state = threading.local()  # ``on`` while graphs.py captures a decode graph (or warms it up)


def graphs_ok(device: torch.device) -> bool:
    """Replay decode steps from CUDA graphs? (``OSS_AGENT_CUDA_GRAPHS=0`` turns them off.) Asked
    every decode step, before its first kernel can start: cheap checks first, no import."""
    if device.type != "cuda" or getattr(capture_state, "on", False):
        return False
    return (
        os.environ.get("OSS_AGENT_CUDA_GRAPHS", "1") != "0"
        and enabled()
        and not torch.cuda.is_current_stream_capturing()
    )


def graphed_decode(
    model: GptOssModel, tokens: StepTokens, seqs: list[SeqCache], cache: KVCache, *, greedy: bool = False
) -> torch.Tensor | GreedyTokens | None:
    """Logits of one decode step from a captured graph (the sequences' lengths advance), with
    ``greedy`` its greedy tokens instead (chosen inside the graph), or None when no graph fits
    (then nothing changed: run eagerly)."""
    from .graphs import graphed_decode as run

    return run(model, tokens, seqs, cache, greedy=greedy)


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    from .fused import rms_norm as run

    return run(x, scale, eps)


def embed_rms_norm(
    tokens: torch.Tensor, positions: torch.Tensor, embedding: torch.Tensor, scale: torch.Tensor, eps: float,
    rope: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from .fused import embed_rms_norm as run

    return run(tokens, positions, embedding, scale, eps, rope)


def add_rms_norm(
    x: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    from .fused import add_rms_norm as run

    return run(x, delta, scale, eps)


def attention_inputs(
    x: torch.Tensor,  # [B, S, H]
    layer: LayerWeights,
    cos: torch.Tensor,
    sin: torch.Tensor,
    slots: torch.Tensor,  # [B, S] cache slot per token
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    num_heads: int,
) -> torch.Tensor | None:
    """The qkv projection, RoPE and the cache write: q ``[B, S, Hq, D]``, or None when the
    shapes don't fit the fused kernel (then the caller runs the plain path)."""
    from .fused import qkv_rope_store, qkv_rope_store_ok
    from .linear import linear_ok, linear_partials

    if not qkv_rope_store_ok(k_pool.shape[2]):
        return None
    b, s, _ = x.shape
    flat = x.reshape(b * s, -1)
    if linear_ok(flat, layer.qkv_weight):  # decode: split-K partials, bias added by the epilogue
        parts, bias = linear_partials(flat, layer.qkv_weight, None), layer.qkv_bias
    else:
        parts, bias = torch.nn.functional.linear(flat, layer.qkv_weight, layer.qkv_bias)[:, None], None
    q = qkv_rope_store(parts, bias, cos, sin, slots.reshape(-1), k_pool, v_pool, num_heads, x.dtype)
    return q.view(b, s, num_heads, -1)


def attention_output(out: torch.Tensor, layer: LayerWeights) -> torch.Tensor:
    """The out projection of ``out [T, Hq * D]``: ``[T, H]``, or at decode sizes float32 partial
    sums ``[T, S, H]`` that :func:`add_rms_norm` sums (no reduction launch)."""
    from .linear import linear_ok, linear_partials

    if linear_ok(out, layer.out_weight):
        return linear_partials(out, layer.out_weight, layer.out_bias)
    return torch.nn.functional.linear(out, layer.out_weight, layer.out_bias)


def unembed(h: torch.Tensor, weight: torch.Tensor, best: torch.Tensor | None = None) -> torch.Tensor | None:
    """Logits ``h [B, H] @ weight.T`` in float32 for decode-sized batches, or None (then the
    caller's matmul). One launch that writes float32 and takes part in programmatic dependent
    launch, where cuBLAS ran a bf16 product and a cast after it, each waiting for the kernel
    before to end. With ``best [B]`` (int64, set to ``sampling.NO_CHOICE``) the same launch
    writes each row's greedy choice there (``sampling.pack_greedy``'s form)."""
    from .linear import linear_partials

    if h.dim() != 2 or not unembed_chooses(h.shape[0], weight):
        return None
    parts = linear_partials(h, weight, None, best=best)  # [B, S, V]: S is 1 at a vocabulary's width
    return parts[:, 0] if parts.shape[1] == 1 else parts.sum(1)


def unembed_chooses(rows: int, weight: torch.Tensor) -> bool:
    """Does :func:`unembed` take ``rows`` rows, and so choose their greedy tokens in its own
    launch? (Past 16 rows the logits come from cuBLAS, and an argmax would cost launches.)"""
    from .linear import TUNING, rows_ok

    return available(weight) and TUNING.logits and rows_ok(rows, weight)


def live_lengths(key_positions: torch.Tensor) -> torch.Tensor:
    from .attention import live_lengths as run

    return run(key_positions)


def attention_ok(head_dim: int) -> bool:
    # tl.dot needs an inner dimension of at least 16; arange needs a power of two.
    return head_dim >= 16 and head_dim & (head_dim - 1) == 0


def _takes_gemv(x: torch.Tensor, cfg: ModelConfig) -> bool:
    """Do ``x [T, H]``'s (token, expert) pairs go through the decode GEMV (moe_gemv)?"""
    from .moe import TUNING, gemv2_ok

    pairs = x.shape[0] * cfg.experts_per_token
    return TUNING.gemv2 and pairs <= TUNING.gemv_max_pairs and gemv2_ok(x.shape[1], cfg.intermediate_size)


def _experts_gemv(xn: GemvInput, experts: torch.Tensor, weights: torch.Tensor, layer: LayerWeights,
                  cfg: ModelConfig, dtype: torch.dtype, partials: bool,
                  logits: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    from .moe import gemv2

    return gemv2(
        xn, experts, weights,
        (layer.mlp1_blocks, layer.mlp1_scales, layer.mlp1_bias),
        (layer.mlp2_blocks, layer.mlp2_scales, layer.mlp2_bias),
        dtype=dtype, alpha=cfg.swiglu_alpha, limit=cfg.swiglu_limit, partials=partials, logits=logits,
    )  # fmt: skip


def add_rms_norm_moe(
    x: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor, eps: float, layer: LayerWeights, cfg: ModelConfig
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`add_rms_norm` of ``x [..., H]`` and ``delta``, then :func:`moe_layer` (with
    ``partials``) of the normalised rows, with the add and the norm inside the router's launch:
    ``(x + delta, the MoE's output)``; or None where the router kernel does not take them (then
    the caller runs the two). One launch, and one wait for a launch, fewer per layer."""
    from . import moe_gemv
    from .moe import TUNING

    flat = x.reshape(-1, x.shape[-1])
    if not (TUNING.gate_route and TUNING.fold_norm and x.is_cuda and _takes_gemv(flat, cfg)):
        return None
    half = TUNING.gemv_half and moe_gemv.half_ok(flat, cfg.swiglu_alpha, cfg.swiglu_limit)
    # The GEMV's programs pick the experts from the logits, where they are few and long enough
    # to hide it (batch 8's thousands of programs each paid for it: 0.15 ms a step more).
    gemv_picks = TUNING.pick_in_gemv and flat.shape[0] * cfg.experts_per_token <= TUNING.gemv2_few_pairs
    x_out, experts, weights, xn, logits = moe_gemv.add_norm_gate_route(
        flat.contiguous(), moe_gemv.ResidualNorm(delta, scale, eps), layer.gate_weight, layer.gate_bias,
        cfg.experts_per_token, half=half, pick=not gemv_picks,
    )  # fmt: skip
    out = _experts_gemv(xn, experts, weights, layer, cfg, x.dtype, partials=True,
                        logits=logits if gemv_picks else None)  # fmt: skip
    return x_out.view(x.shape), out


def moe_layer(x: torch.Tensor, layer: LayerWeights, cfg: ModelConfig, *, partials: bool = False) -> torch.Tensor:
    """``x [T, H]`` through the router and its top-k MXFP4 experts: ``[T, H]`` in ``x``'s dtype;
    with ``partials``, possibly ``[T, k, H]`` float32 weighted per-expert outputs instead (for
    :func:`add_rms_norm`, which sums them: two launches fewer)."""
    from .moe import TUNING, moe, route

    k = cfg.experts_per_token
    if _takes_gemv(x, cfg):
        from . import moe_gemv  # one router kernel: top-k, softmax, activations in nibble order
        from .linear import linear_ok, linear_partials

        half = TUNING.gemv_half and moe_gemv.half_ok(x, cfg.swiglu_alpha, cfg.swiglu_limit)
        if TUNING.gate_route:  # the router's linear layer in the router kernel: one launch
            experts, weights, xn = moe_gemv.gate_route(x, layer.gate_weight, layer.gate_bias, k, half=half)
        else:
            if linear_ok(x, layer.gate_weight):  # partial sums, added up by the router kernel
                logits = linear_partials(x, layer.gate_weight, layer.gate_bias)
            else:
                logits = torch.nn.functional.linear(x, layer.gate_weight, layer.gate_bias)
            experts, weights, xn = moe_gemv.route(logits, x, k, half=half, x_ready=True)  # the gate wrote logits
        return _experts_gemv(xn, experts, weights, layer, cfg, x.dtype, partials)
    if TUNING.tiles_kernel and TUNING.gate_route and x.is_cuda:
        from . import moe_gemv

        experts, weights = moe_gemv.gate_topk(x, layer.gate_weight, layer.gate_bias, k)
    else:
        experts, weights = route(x, layer.gate_weight, layer.gate_bias, k)
    return moe(
        x,
        experts,
        weights,
        (layer.mlp1_blocks, layer.mlp1_scales, layer.mlp1_bias),
        (layer.mlp2_blocks, layer.mlp2_scales, layer.mlp2_bias),
        alpha=cfg.swiglu_alpha,
        limit=cfg.swiglu_limit,
        partials=partials,
    )


def attention_prefill(
    q: torch.Tensor,  # [B, S, Hq, D]
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    read_slots: torch.Tensor,
    key_positions: torch.Tensor,
    positions: torch.Tensor,  # [B, S]
    sinks: torch.Tensor,
    window: int | None,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    from .attention import prefill_attention

    return prefill_attention(q, k_pool, v_pool, read_slots, key_positions, positions, sinks, window, lengths)


def attention_decode(
    q: torch.Tensor,  # [B, Hq, D]
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    read_slots: torch.Tensor,
    key_positions: torch.Tensor,
    positions: torch.Tensor,  # [B]
    sinks: torch.Tensor,
    window: int | None,
    lengths: torch.Tensor | None = None,  # [B] live key columns (from :func:`live_lengths`)
) -> torch.Tensor:
    from .attention import decode_attention

    return decode_attention(q, k_pool, v_pool, read_slots, key_positions, positions, sinks, window, lengths)


__all__ = [
    "add_rms_norm", "add_rms_norm_moe", "attention_decode", "attention_inputs", "attention_prefill", "attention_ok",
    "attention_output", "available", "embed_rms_norm", "enabled", "graphed_decode", "graphs_ok", "live_lengths",
    "moe_layer", "rms_norm", "unembed", "unembed_chooses",
]  # fmt: skip
