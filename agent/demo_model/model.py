"""The demo model's shape, and a trainable gpt-oss in plain PyTorch (``nn.Module``).

The inference engine (:mod:`agent.engine.gptoss.model`) is forward-only and reads packed
weights; training needs autograd over dense parameters, so this module holds the same math as
a module: pre-norm blocks, grouped-query attention with biases, RoPE, per-head sink logits and
alternating sliding-window/full layers, and a top-k mixture of clamped-SwiGLU experts.

Quantisation-aware training: with ``quantize=True`` the experts, the embedding and the
unembedding are rounded to MXFP4 in the forward pass (straight-through gradients), so the model
learns weights that survive the export. The export test checks that the engine, reading the
exported checkpoint, computes the logits this module computes with ``quantize=True``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agent.engine.gptoss import mxfp4
from agent.engine.gptoss.config import ModelConfig
from agent.engine.gptoss.model import rope_tables, swiglu

# gpt-oss' architecture at a size whose checkpoint (embedding and unembedding in MXFP4 too)
# stays under 25 MB: the 201,088-token vocabulary costs 107 KB per hidden unit per matrix.
DEMO_CONFIG = ModelConfig(
    num_hidden_layers=6,
    num_experts=8,
    experts_per_token=2,
    vocab_size=201_088,
    hidden_size=96,
    intermediate_size=192,
    head_dim=32,
    num_attention_heads=6,
    num_key_value_heads=2,
    sliding_window=128,
    initial_context_length=4096,
    rope_theta=150_000.0,
    rope_scaling_factor=1.0,
    rope_ntk_alpha=1.0,
    rope_ntk_beta=32.0,
    swiglu_limit=7.0,
)


def fake_mxfp4(w: torch.Tensor) -> torch.Tensor:
    """``w`` rounded to MXFP4 (blocks of 32 along the last dim) with straight-through gradient:
    exactly what the export stores and the engine decodes."""
    blocks, scales = mxfp4.quantize(w.detach())
    q = mxfp4.dequantize(blocks, scales, w.dtype).view(w.shape)
    return w + (q - w).detach()


# The engine's rms_norm/apply_rope hand CUDA tensors to Triton kernels that have no backward;
# training keeps these two lines of plain PyTorch.
def _rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * scale).to(x.dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def attention_with_sinks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor,
                         allowed: torch.Tensor) -> torch.Tensor:
    """Softmax attention whose every row also holds a per-head *sink* logit (a key with value 0).

    ``q, k, v [B, Hq, S, D]``, ``sinks [Hq]``, ``allowed [B, S, S]`` -> ``[B, Hq, S, D]``.
    Runs as one fused ``scaled_dot_product_attention``: the sink becomes key 0 through one extra
    head dimension (1 in every query, ``sink / scale`` in the sink key, 0 in the real keys), so
    no ``[B, H, S, S]`` score tensor is kept for backward. Key length and head size are padded to
    multiples of 8 for the fused kernels; padding keys are masked out.
    """
    b, h, s, d = q.shape
    scale = 1.0 / math.sqrt(d)
    width = -(-(d + 1) // 8) * 8
    keys = -(-(s + 1) // 8) * 8
    q = torch.cat((q, q.new_ones(b, h, s, 1), q.new_zeros(b, h, s, width - d - 1)), dim=-1)
    sink_key = torch.cat((k.new_zeros(h, d), (sinks / scale).to(k.dtype)[:, None],
                          k.new_zeros(h, width - d - 1)), dim=-1)  # [H, W]
    k = torch.cat((sink_key[:, None].expand(b, h, 1, width),
                   F.pad(k, (0, width - d)), k.new_zeros(b, h, keys - s - 1, width)), dim=2)
    v = F.pad(v, (0, width - d, 1, keys - s - 1))
    mask = F.pad(allowed, (1, keys - s - 1), value=False)
    mask[..., 0] = True
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=scale)
    return out[..., :d]


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, sliding: bool) -> None:
        super().__init__()
        h, d, e, i = cfg.hidden_size, cfg.head_dim, cfg.num_experts, cfg.intermediate_size
        hq, hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.cfg, self.window = cfg, cfg.sliding_window if sliding else None
        self.attn_norm = nn.Parameter(torch.ones(h))
        self.qkv = nn.Linear(h, (hq + 2 * hkv) * d)
        self.sinks = nn.Parameter(torch.zeros(hq))
        self.out = nn.Linear(hq * d, h)
        self.mlp_norm = nn.Parameter(torch.ones(h))
        self.gate = nn.Linear(h, e)
        self.mlp1_weight = nn.Parameter(torch.randn(e, 2 * i, h) / math.sqrt(h))
        self.mlp1_bias = nn.Parameter(torch.zeros(e, 2 * i))
        self.mlp2_weight = nn.Parameter(torch.randn(e, h, i) / math.sqrt(i) / 2)
        self.mlp2_bias = nn.Parameter(torch.zeros(e, h))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                pad: torch.Tensor, quantize: bool) -> torch.Tensor:
        eps = self.cfg.rms_norm_eps
        x = x + self._attention(_rms_norm(x, self.attn_norm, eps), cos, sin, pad)
        return x + self._moe(_rms_norm(x, self.mlp_norm, eps), quantize)

    def _attention(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   pad: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, s, _ = x.shape
        hq, hkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q, k, v = self.qkv(x).split([hq * d, hkv * d, hkv * d], dim=-1)
        q = _rope(q.view(b, s, hq, d), cos, sin).transpose(1, 2)  # [B, Hq, S, D]
        k = _rope(k.view(b, s, hkv, d), cos, sin).transpose(1, 2)
        v = v.view(b, s, hkv, d).transpose(1, 2)
        k, v = k.repeat_interleave(hq // hkv, dim=1), v.repeat_interleave(hq // hkv, dim=1)
        pos = torch.arange(s, device=x.device)
        allowed = pos[None, :] <= pos[:, None]
        if self.window is not None:
            allowed &= pos[:, None] - pos[None, :] < self.window
        allowed = allowed[None] & ~pad[:, None, :]  # [B, S, S]: padded keys are never attended
        out = attention_with_sinks(q, k, v, self.sinks, allowed)
        return self.out(out.transpose(1, 2).reshape(b, s, hq * d))

    def _moe(self, x: torch.Tensor, quantize: bool) -> torch.Tensor:
        cfg = self.cfg
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        top_logits, top_experts = torch.topk(self.gate(x), cfg.experts_per_token, dim=-1)
        top_weights = torch.softmax(top_logits.float(), dim=-1).to(x.dtype)
        w1 = fake_mxfp4(self.mlp1_weight) if quantize else self.mlp1_weight
        w2 = fake_mxfp4(self.mlp2_weight) if quantize else self.mlp2_weight
        out = torch.zeros_like(x)
        for e in range(cfg.num_experts):
            tok, slot = torch.nonzero(top_experts == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            hidden = swiglu(F.linear(x[tok], w1[e], self.mlp1_bias[e]), cfg.swiglu_alpha,
                            cfg.swiglu_limit)
            y = F.linear(hidden, w2[e], self.mlp2_bias[e])
            out = out.index_add(0, tok, y * top_weights[tok, slot, None])
        return out.view(shape)


class TrainableGptOss(nn.Module):
    def __init__(self, cfg: ModelConfig = DEMO_CONFIG, max_positions: int = 4096) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Parameter(torch.randn(cfg.vocab_size, cfg.hidden_size) * 0.5)
        self.blocks = nn.ModuleList(Block(cfg, t == "sliding_attention")
                                    for t in cfg.layer_types or ())
        self.norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.unembedding = nn.Parameter(torch.randn(cfg.vocab_size, cfg.hidden_size)
                                        / math.sqrt(cfg.hidden_size))
        self.register_buffer("rope", rope_tables(cfg, max_positions, torch.device("cpu")),
                             persistent=False)

    def hidden(self, tokens: torch.Tensor, pad: torch.Tensor | None = None, *,
               quantize: bool = False) -> torch.Tensor:
        """Final-normed hidden states ``[B, S, H]`` of ``tokens [B, S]`` (``pad`` marks padding)."""
        pad = torch.zeros_like(tokens, dtype=torch.bool) if pad is None else pad
        emb = fake_mxfp4(self.embedding) if quantize else self.embedding
        x = emb[tokens]
        rope = self.rope[: tokens.shape[1]].to(x.dtype)
        cos, sin = rope[None, :, None, 0], rope[None, :, None, 1]
        for block in self.blocks:
            x = block(x, cos, sin, pad, quantize)
        return _rms_norm(x, self.norm, self.cfg.rms_norm_eps)

    def unembedding_weight(self, *, quantize: bool = False) -> torch.Tensor:
        return fake_mxfp4(self.unembedding) if quantize else self.unembedding

    def logits(self, tokens: torch.Tensor, *, quantize: bool = False) -> torch.Tensor:
        """``[B, S, V]`` float32 logits (small inputs: tests and evaluation)."""
        h = self.hidden(tokens, quantize=quantize)
        return (h @ self.unembedding_weight(quantize=quantize).T).float()
