"""The model's tensors in memory: dense weights in the compute dtype, experts still MXFP4."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog
import torch

from . import mxfp4
from .checkpoint import Checkpoint, TensorSource, open_checkpoint
from .config import ModelConfig

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class LayerWeights:
    attn_norm: torch.Tensor  # [H] float32: norms run in float32 like the reference
    qkv_weight: torch.Tensor  # [(Hq + 2 Hkv) * D, H]
    qkv_bias: torch.Tensor  # [(Hq + 2 Hkv) * D]
    sinks: torch.Tensor  # [Hq] float32: one learned "attend to nothing" logit per head
    out_weight: torch.Tensor  # [H, Hq * D]
    out_bias: torch.Tensor  # [H]
    mlp_norm: torch.Tensor  # [H] float32
    gate_weight: torch.Tensor  # [E, H] router
    gate_bias: torch.Tensor  # [E]
    # Experts' blocks in the engine's byte layout (mxfp4.to_engine_layout), scales as stored.
    mlp1_blocks: torch.Tensor  # [E, 2I, H/32, 16] uint8; rows interleave gate (even), up (odd)
    mlp1_scales: torch.Tensor  # [E, 2I, H/32] uint8
    mlp1_bias: torch.Tensor  # [E, 2I]
    mlp2_blocks: torch.Tensor  # [E, H, I/32, 16] uint8
    mlp2_scales: torch.Tensor  # [E, H, I/32] uint8
    mlp2_bias: torch.Tensor  # [E, H]


@dataclass(slots=True)
class ModelWeights:
    config: ModelConfig
    embedding: torch.Tensor  # [V, H]
    layers: list[LayerWeights]
    norm: torch.Tensor  # [H] float32
    unembedding: torch.Tensor  # [V, H]

    @property
    def device(self) -> torch.device:
        return self.embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding.dtype

    def nbytes(self) -> int:
        tensors = [self.embedding, self.norm, self.unembedding]
        for layer in self.layers:
            tensors.extend(getattr(layer, f) for f in LayerWeights.__slots__)
        return sum(t.numel() * t.element_size() for t in tensors)


_FP32 = {"attn.norm.scale", "attn.sinks", "mlp.norm.scale"}
_MXFP4 = {
    "mlp.mlp1_weight.blocks", "mlp.mlp1_weight.scales",
    "mlp.mlp2_weight.blocks", "mlp.mlp2_weight.scales",
}  # fmt: skip
_FIELDS = {
    "attn_norm": "attn.norm.scale",
    "qkv_weight": "attn.qkv.weight",
    "qkv_bias": "attn.qkv.bias",
    "sinks": "attn.sinks",
    "out_weight": "attn.out.weight",
    "out_bias": "attn.out.bias",
    "mlp_norm": "mlp.norm.scale",
    "gate_weight": "mlp.gate.weight",
    "gate_bias": "mlp.gate.bias",
    "mlp1_blocks": "mlp.mlp1_weight.blocks",
    "mlp1_scales": "mlp.mlp1_weight.scales",
    "mlp1_bias": "mlp.mlp1_bias",
    "mlp2_blocks": "mlp.mlp2_weight.blocks",
    "mlp2_scales": "mlp.mlp2_weight.scales",
    "mlp2_bias": "mlp.mlp2_bias",
}


def _dense(ckpt: Checkpoint, src: TensorSource, name: str, dev: torch.device,
           dtype: torch.dtype) -> torch.Tensor:
    """A dense matrix stored as is, or as MXFP4 ``name.blocks``/``name.scales`` (decoded once)."""
    if ckpt.layout == "original" and name not in ckpt.weight_map \
            and f"{name}.blocks" in ckpt.weight_map:
        blocks = src.get(f"{name}.blocks", device=dev, dtype=None)
        scales = src.get(f"{name}.scales", device=dev, dtype=None)
        return mxfp4.dequantize(blocks, scales, dtype)
    return src.get(name, device=dev, dtype=dtype)


def load_weights(
    path: str | Path | Checkpoint,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
) -> ModelWeights:
    """Load every tensor of a checkpoint onto ``device``, one tensor at a time.

    Raises:
        CheckpointError: missing/truncated file, missing tensor, wrong shape or dtype.
        ConfigError: the checkpoint's config.json is invalid.
    """
    ckpt = path if isinstance(path, Checkpoint) else open_checkpoint(path)
    dev = torch.device(device)
    with TensorSource(ckpt) as src:

        def get(name: str, kind: str) -> torch.Tensor:
            if kind in _MXFP4:
                raw = src.get(name, device=dev, dtype=None)
                return mxfp4.to_engine_layout(raw) if kind.endswith(".blocks") else raw
            return src.get(name, device=dev, dtype=torch.float32 if kind in _FP32 else dtype)

        layers = []
        for i in range(ckpt.config.num_hidden_layers):
            fields = {f: get(f"block.{i}.{n}", n) for f, n in _FIELDS.items()}
            layers.append(LayerWeights(**fields))
        weights = ModelWeights(
            config=ckpt.config,
            embedding=_dense(ckpt, src, "embedding.weight", dev, dtype),
            layers=layers,
            norm=src.get("norm.scale", device=dev, dtype=torch.float32),
            unembedding=_dense(ckpt, src, "unembedding.weight", dev, dtype),
        )
    log.info("weights.loaded", device=str(dev), dtype=str(dtype), bytes=weights.nbytes())
    return weights
