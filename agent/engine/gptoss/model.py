"""The gpt-oss forward pass in plain PyTorch, over a padded batch and the paged KV cache.

Math (same as the reference ``gpt_oss/torch/model.py``):
- pre-norm residual blocks: ``x += attn(rmsnorm(x))``; ``x += moe(rmsnorm(x))``;
- grouped-query attention with q/k/v/o biases, YaRN RoPE on q and k (half-split rotation),
  a learned per-head *sink* logit appended to every softmax row and dropped afterwards, and a
  sliding window on the layers marked ``sliding_attention``;
- mixture of experts: router top-k, softmax over the chosen logits only; each expert is a
  clamped SwiGLU (``alpha = 1.702``, ``limit``, ``+1`` on the linear half) with biases, its weights
  decoded from MXFP4 only when a token picks it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import kernels, mxfp4
from .config import ModelConfig
from .kv_cache import AttentionMeta, KVCache, LayerTypeMeta, SeqCache
from .sampling import GreedyTokens, StepTokens, pack_greedy
from .weights import LayerWeights, ModelWeights

_DEQUANT_BUDGET_BYTES = 256 * 2**20  # transient dequantized experts per group in _moe
# Without the Triton kernels, experts of a model this small (every layer's, decoded) stay decoded:
# re-decoding them each step costs more than the step's matmuls. Big models stay packed.
_DENSE_EXPERTS_BYTES = 256 * 2**20


def rope_tables(config: ModelConfig, max_positions: int, device: torch.device) -> torch.Tensor:
    """``[max_positions, 2, D/2]`` float32 cos and sin, YaRN-scaled ("NTK by parts")."""
    d = config.head_dim
    freq = config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    inv_freq = 1.0 / freq
    if config.rope_scaling_factor > 1.0:
        d_half = d / 2
        ctx, base = config.initial_context_length, math.log(config.rope_theta)
        # Dimensions rotating fast (> ntk_beta turns over the original context) keep their
        # frequency; slow ones (< ntk_alpha turns) are interpolated; a linear ramp in between.
        low = d_half * math.log(ctx / (config.rope_ntk_beta * 2 * math.pi)) / base
        high = d_half * math.log(ctx / (config.rope_ntk_alpha * 2 * math.pi)) / base
        # The reference asserts 0 < low < high < d/2 - 1; outside that (toy shapes) clamp as HF does.
        low, high = max(low, 0.0), min(high, d - 1.0)
        ramp = (torch.arange(d_half, dtype=torch.float64) - low) / max(high - low, 1e-3)
        extrapolate = 1 - ramp.clamp(0, 1)
        interpolated = 1.0 / (config.rope_scaling_factor * freq)
        inv_freq = interpolated * (1 - extrapolate) + inv_freq * extrapolate
    inv_freq = inv_freq.to(torch.float32)
    t = torch.arange(max_positions, dtype=torch.float32)
    angles = torch.outer(t, inv_freq)  # [P, D/2]
    c = config.rope_concentration
    return torch.stack((angles.cos() * c, angles.sin() * c), dim=1).to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [..., D]`` whose first and second halves form the pairs (gpt-oss convention).
    (On the kernel path RoPE runs inside ``kernels.attention_inputs``, fused with the projection.)"""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    if kernels.available(x):  # [kernels hook] one fused launch
        return kernels.rms_norm(x, scale, eps)
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * scale).to(x.dtype)


def add_rms_norm(
    x: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual add and the next sublayer's norm: ``(x + delta, rms_norm(x + delta))``."""
    if kernels.available(x):  # [kernels hook] one launch; delta may be [T, k, H] MoE partials
        return kernels.add_rms_norm(x, delta, scale, eps)
    x = x + delta
    return x, rms_norm(x, scale, eps)


def swiglu(x: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
    """``x [..., 2I]`` with gate at even and linear at odd columns -> ``[..., I]``."""
    gate, linear = x[..., ::2], x[..., 1::2]
    gate = gate.clamp(max=limit)
    linear = linear.clamp(min=-limit, max=limit)
    return gate * torch.sigmoid(alpha * gate) * (linear + 1)


class GptOssModel:
    """Weights plus the pure functions that run them. Not an ``nn.Module``: inference only."""

    def __init__(self, weights: ModelWeights, *, max_positions: int) -> None:
        self.weights = weights
        self.config = weights.config
        self.device = weights.device
        self.rope = rope_tables(self.config, max_positions, weights.device)  # [P, 2, D/2]
        self._dense_experts: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        values = sum(lw.mlp1_blocks.numel() + lw.mlp2_blocks.numel() for lw in weights.layers) * 2
        on_cpu = weights.device.type == "cpu"
        if on_cpu and values * weights.dtype.itemsize <= _DENSE_EXPERTS_BYTES:
            self._dense_experts = [
                (mxfp4.dequantize(lw.mlp1_blocks, lw.mlp1_scales, weights.dtype, layout="engine"),
                 mxfp4.dequantize(lw.mlp2_blocks, lw.mlp2_scales, weights.dtype, layout="engine"))
                for lw in weights.layers
            ]  # fmt: skip

    def decode(self, tokens: StepTokens, seqs: list[SeqCache], cache: KVCache) -> torch.Tensor:
        """One decode step: ``tokens[b]`` appended to ``seqs[b]`` (their lengths advance by one).
        ``tokens`` may be an int64 ``[B]`` tensor on the model's device (sampled by the step
        before, not read back yet), or the greedy tokens of :meth:`decode_greedy`. Returns
        logits ``[B, V]`` (float32)."""
        # A replay runs no autograd-tracked op, so it skips inference mode's context, whose
        # entry (~5 us) would delay the step's first kernel.
        if kernels.graphs_ok(self.device):
            logits = kernels.graphed_decode(self, tokens, seqs, cache)  # [kernels hook] CUDA graph
            if isinstance(logits, torch.Tensor):
                return logits
        return self._decode_eagerly(tokens, seqs, cache)

    def decode_greedy(self, tokens: StepTokens, seqs: list[SeqCache], cache: KVCache) -> GreedyTokens | None:
        """:meth:`decode` followed by each row's argmax, both inside the step's CUDA graph: the
        tokens stay on the device (the next step may take them as its ``tokens``) and reach
        pinned host memory with the replay. None when no graph takes the step (nothing ran:
        call :meth:`decode` and sample its logits)."""
        if not kernels.graphs_ok(self.device):
            return None
        chosen = kernels.graphed_decode(self, tokens, seqs, cache, greedy=True)  # [kernels hook] CUDA graph
        return chosen if isinstance(chosen, GreedyTokens) else None

    @torch.inference_mode()
    def _decode_eagerly(self, tokens: StepTokens, seqs: list[SeqCache], cache: KVCache) -> torch.Tensor:
        dev = self.device
        meta = cache.build_meta(seqs, [q.length for q in seqs], [1] * len(seqs))
        first = torch.zeros(len(seqs), dtype=torch.long, device=dev)
        if isinstance(tokens, GreedyTokens):
            tokens = tokens.tokens()
        ids = tokens.view(-1, 1) if isinstance(tokens, torch.Tensor) else torch.tensor([[t] for t in tokens], device=dev)
        return self.forward(ids, meta, cache, first)

    @torch.inference_mode()
    def forward(
        self,
        tokens: torch.Tensor,
        meta: AttentionMeta,
        cache: KVCache,
        logit_index: torch.Tensor | None = None,
        *,
        best: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run ``tokens [B, S]`` through every layer, writing their keys/values to ``cache``.

        Returns logits ``[B, V]`` at ``logit_index [B]`` (the last real token of each row) or,
        with ``logit_index=None``, ``[B, S, V]`` for every position. Logits are float32. With
        ``best [B]`` (int64, set to ``sampling.NO_CHOICE``; needs ``logit_index``) each row's
        argmax is written there too, packed as ``sampling.pack_greedy`` packs it.
        """
        w, cfg = self.weights, self.config
        assert tokens.shape == meta.positions.shape, "tokens and positions must be [B, S]"
        eps, layers = cfg.rms_norm_eps, w.layers
        first_norm = layers[0].attn_norm if layers else w.norm
        if kernels.available(w.embedding):  # [kernels hook] embedding, first norm, RoPE rows: 1 launch
            x, h, rope = kernels.embed_rms_norm(tokens, meta.positions, w.embedding, first_norm, eps, self.rope)
        else:
            x = w.embedding[tokens]  # [B, S, H]
            rope = self.rope[meta.positions.clamp_min(0)].to(x.dtype)  # [B, S, 2, D/2]
            h = rms_norm(x, first_norm, eps)
        cos, sin = rope[:, :, None, 0], rope[:, :, None, 1]  # [B, S, 1, D/2]
        # Each residual add is fused with the norm after it (the next layer's, or the final one:
        # normalising every row and then picking rows equals picking and then normalising).
        lengths: dict[str, torch.Tensor] = {}  # live key columns per layer type, counted once
        for i, layer in enumerate(layers):
            kind, k_pool, v_pool = cache.layer_pools(i)
            tmeta = meta.full if kind == "full" else meta.sliding
            window = cfg.sliding_window if kind == "sliding" else None
            attn = self._attention(h, layer, cos, sin, meta.positions, tmeta, k_pool, v_pool, window,
                                   lengths, kind)  # fmt: skip
            folded = None
            if kernels.available(x):  # [kernels hook] the add and the norm inside the router's launch
                folded = kernels.add_rms_norm_moe(x, attn, layer.mlp_norm, eps, layer, cfg)
            if folded is not None:
                x, out = folded
            else:
                x, h = add_rms_norm(x, attn, layer.mlp_norm, eps)
                out = self._moe(h.flatten(0, 1), layer, partials=True, index=i)
            next_norm = layers[i + 1].attn_norm if i + 1 < len(layers) else w.norm
            x, h = add_rms_norm(x, out if out.dim() == 3 else out.view_as(x), next_norm, eps)
        if logit_index is not None:
            # One position per row (decode): its index can only be 0, and a view costs no launch.
            h = h[:, 0] if h.shape[1] == 1 else h[torch.arange(h.shape[0], device=h.device), logit_index]  # [B, H]
        if kernels.available(h):  # [kernels hook] float32 logits (and the argmax) from one launch
            logits = kernels.unembed(h, w.unembedding, best)
            if logits is not None:
                return logits
        logits = (h @ w.unembedding.T).float()
        if best is not None:
            best.copy_(pack_greedy(logits))
        return logits

    def _attention(
        self,
        x: torch.Tensor,  # [B, S, H]
        layer: LayerWeights,
        cos: torch.Tensor,
        sin: torch.Tensor,
        positions: torch.Tensor,  # [B, S]
        meta: LayerTypeMeta,
        k_pool: torch.Tensor,  # [slots, Hkv, D]
        v_pool: torch.Tensor,
        window: int | None,
        lengths: dict[str, torch.Tensor],  # live key columns per layer kind, filled on first use
        kind: str,  # "full" or "sliding"
    ) -> torch.Tensor:
        """Returns ``[B, S, H]``, or on the kernel path possibly float32 partial sums ``[B * S,
        P, H]`` of the out projection (for :func:`add_rms_norm`)."""
        cfg = self.config
        b, s, _ = x.shape
        hq, hkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        # Keys are written before attention reads so a chunk attends to itself through one path.
        q = None
        if kernels.available(x):  # [kernels hook] projection epilogue, RoPE, cache write: 1 launch
            q = kernels.attention_inputs(x, layer, cos, sin, meta.write_slots, k_pool, v_pool, hq)
        if q is None:
            qkv = F.linear(x, layer.qkv_weight, layer.qkv_bias)
            q, k, v = torch.split(qkv, [hq * d, hkv * d, hkv * d], dim=-1)
            q = apply_rope(q.view(b, s, hq, d), cos, sin)
            k = apply_rope(k.view(b, s, hkv, d), cos, sin)
            slots = meta.write_slots.flatten()
            k_pool.index_copy_(0, slots, k.reshape(-1, hkv, d).to(k_pool.dtype))
            v_pool.index_copy_(0, slots, v.reshape(-1, hkv, d).to(v_pool.dtype))
        if kernels.available(x) and kernels.attention_ok(d):  # [kernels hook]
            if kind not in lengths:
                lengths[kind] = meta.lengths if meta.lengths is not None else kernels.live_lengths(meta.key_positions)
            if s == 1:  # decode: split-K over the keys, then the out projection's partial sums
                out = kernels.attention_decode(
                    q[:, 0], k_pool, v_pool, meta.read_slots, meta.key_positions, positions[:, 0],
                    layer.sinks, window, lengths[kind],
                )  # fmt: skip
                return kernels.attention_output(out.reshape(b * s, hq * d), layer)
            out = kernels.attention_prefill(  # flash attention over the chunk
                q.view(b, s, hq, d), k_pool, v_pool, meta.read_slots, meta.key_positions, positions,
                layer.sinks, window, lengths[kind],
            )  # fmt: skip
            return F.linear(out.reshape(b, s, hq * d), layer.out_weight, layer.out_bias)
        keys = k_pool[meta.read_slots].to(x.dtype)  # [B, L, Hkv, D]
        values = v_pool[meta.read_slots].to(x.dtype)
        q = q.view(b, s, hkv, hq // hkv, d)  # query head h uses kv head h // (Hq / Hkv)
        scores = torch.einsum("bsgqd,blgd->bgqsl", q, keys).float() / math.sqrt(d)
        kpos = meta.key_positions[:, None, :]  # [B, 1, L]
        qpos = positions[:, :, None]  # [B, S, 1]
        allowed = (kpos >= 0) & (kpos <= qpos)
        if window is not None:
            allowed &= qpos - kpos < window
        scores = scores.masked_fill(~allowed[:, None, None], float("-inf"))
        sinks = layer.sinks.view(1, hkv, hq // hkv, 1, 1).expand(b, -1, -1, s, 1)
        # The sink column keeps every row finite, padded rows included.
        probs = torch.softmax(torch.cat((scores, sinks), dim=-1), dim=-1)[..., :-1]
        out = torch.einsum("bgqsl,blgd->bsgqd", probs.to(x.dtype), values)
        return F.linear(out.reshape(b, s, hq * d), layer.out_weight, layer.out_bias)

    def _moe(
        self, x: torch.Tensor, layer: LayerWeights, *, partials: bool = False, index: int = -1
    ) -> torch.Tensor:
        """``x [T, H]`` -> ``[T, H]``: each token through its top-k experts (``partials``: the
        kernels may return ``[T, k, H]`` float32 per-expert terms for :func:`add_rms_norm`)."""
        cfg = self.config
        if kernels.available(x):  # [kernels hook] packed MXFP4 experts, Triton
            return kernels.moe_layer(x, layer, cfg, partials=partials)
        logits = F.linear(x, layer.gate_weight, layer.gate_bias)  # [T, E]
        top_logits, top_experts = torch.topk(logits, cfg.experts_per_token, dim=-1)  # [T, k]
        top_weights = torch.softmax(top_logits.float(), dim=-1).to(x.dtype)
        out = torch.zeros_like(x)
        hit = torch.unique(top_experts)  # sorted expert ids that at least one token chose
        if self._dense_experts is not None and index >= 0:
            # Already decoded: index the chosen experts in place, no copy per step.
            experts = hit.tolist()
            w1_all, w2_all = self._dense_experts[index]
            self._run_experts(x, layer, experts, experts, w1_all, w2_all, top_experts,
                              top_weights, out)
            return out
        # Decode the chosen experts a group at a time: one dequantize call per group keeps the
        # Python overhead low, the byte budget keeps the transient copy small on big models.
        per_expert = (layer.mlp1_blocks[0].numel() + layer.mlp2_blocks[0].numel()) * 2 * x.element_size()
        group = max(1, _DEQUANT_BUDGET_BYTES // per_expert)
        for first in range(0, len(hit), group):
            ids = hit[first : first + group]
            w1s = mxfp4.dequantize(layer.mlp1_blocks[ids], layer.mlp1_scales[ids], x.dtype, layout="engine")  # [g, 2I, H]
            w2s = mxfp4.dequantize(layer.mlp2_blocks[ids], layer.mlp2_scales[ids], x.dtype, layout="engine")  # [g, H, I]
            experts = ids.tolist()  # w1s/w2s hold only this group: expert ids[j] is row j
            self._run_experts(x, layer, experts, range(len(experts)), w1s, w2s, top_experts,
                              top_weights, out)
        return out

    def _run_experts(
        self,
        x: torch.Tensor,  # [T, H]
        layer: LayerWeights,
        experts: Sequence[int],  # expert ids to run
        rows: Sequence[int],  # where each one's weights are in w1s/w2s
        w1s: torch.Tensor,  # [*, 2I, H]
        w2s: torch.Tensor,  # [*, H, I]
        top_experts: torch.Tensor,  # [T, k]
        top_weights: torch.Tensor,  # [T, k]
        out: torch.Tensor,  # [T, H], accumulated into
    ) -> None:
        cfg = self.config
        for e, row in zip(experts, rows, strict=True):
            tok, slot = torch.nonzero(top_experts == e, as_tuple=True)
            hidden = F.linear(x[tok], w1s[row], layer.mlp1_bias[e])
            hidden = swiglu(hidden, cfg.swiglu_alpha, cfg.swiglu_limit)
            y = F.linear(hidden, w2s[row], layer.mlp2_bias[e])
            out.index_add_(0, tok, y * top_weights[tok, slot, None])


def sequence_logits(model: GptOssModel, tokens: Sequence[int], *, chunk: int = 256) -> torch.Tensor:
    """Float32 logits ``[len(tokens), V]`` at every position of one sequence, read ``chunk`` tokens
    at a time through a fresh cache of its own (the engine's real path: scoring and tests)."""
    block = 16
    cache = KVCache(model.config, num_blocks=-(-len(tokens) // block) + 1, block_size=block,
                    num_rings=1, prefill_chunk=chunk, device=model.weights.device,
                    dtype=model.weights.dtype)  # fmt: skip
    seq = cache.allocate()
    cache.reserve(seq, len(tokens))
    out = []
    for start in range(0, len(tokens), chunk):
        piece = list(tokens[start : start + chunk])
        meta = cache.build_meta([seq], [start], [len(piece)])
        ids = torch.tensor([piece], device=model.weights.device)
        out.append(model.forward(ids, meta, cache)[0])
    return torch.cat(out)
