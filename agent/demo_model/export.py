"""Export a :class:`~agent.demo_model.model.TrainableGptOss` to gpt-oss' original layout.

``config.json`` (original spelling) and one ``model.safetensors``: experts as MXFP4 blocks and
scales like the released checkpoints, attention, router and norms in bfloat16 (norms and sinks
float32 as the engine reads them), and the embedding and unembedding as MXFP4 too (see
:data:`agent.engine.gptoss.checkpoint.QUANTIZABLE_DENSE`), which is what keeps the file small.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from agent.demo_model.model import TrainableGptOss
from agent.engine.gptoss import mxfp4
from agent.engine.gptoss.weights import load_weights

CHECKPOINT_FILE = "model.safetensors"


def _mxfp4(name: str, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    blocks, scales = mxfp4.quantize(weight.detach().float().cpu())
    return {f"{name}.blocks": blocks, f"{name}.scales": scales}


def checkpoint_tensors(model: TrainableGptOss) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint by its original-layout name."""

    def bf16(t: torch.Tensor) -> torch.Tensor:
        return t.detach().cpu().to(torch.bfloat16).contiguous()

    out = _mxfp4("embedding.weight", model.embedding)
    for i, block in enumerate(model.blocks):
        b = f"block.{i}"
        out |= {
            f"{b}.attn.norm.scale": block.attn_norm.detach().float().cpu(),
            f"{b}.attn.qkv.weight": bf16(block.qkv.weight),
            f"{b}.attn.qkv.bias": bf16(block.qkv.bias),
            f"{b}.attn.sinks": block.sinks.detach().float().cpu(),
            f"{b}.attn.out.weight": bf16(block.out.weight),
            f"{b}.attn.out.bias": bf16(block.out.bias),
            f"{b}.mlp.norm.scale": block.mlp_norm.detach().float().cpu(),
            f"{b}.mlp.gate.weight": bf16(block.gate.weight),
            f"{b}.mlp.gate.bias": bf16(block.gate.bias),
            f"{b}.mlp.mlp1_bias": bf16(block.mlp1_bias),
            f"{b}.mlp.mlp2_bias": bf16(block.mlp2_bias),
        }
        out |= _mxfp4(f"{b}.mlp.mlp1_weight", block.mlp1_weight)
        out |= _mxfp4(f"{b}.mlp.mlp2_weight", block.mlp2_weight)
    out["norm.scale"] = model.norm.detach().float().cpu()
    out |= _mxfp4("unembedding.weight", model.unembedding)
    return out


def export_checkpoint(model: TrainableGptOss, out: str | Path) -> Path:
    """Write ``out/config.json`` and ``out/model.safetensors``; returns ``out``."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    save_file(checkpoint_tensors(model), str(root / CHECKPOINT_FILE), metadata={"format": "pt"})
    (root / "config.json").write_text(json.dumps(model.cfg.to_original(), indent=2) + "\n")
    return root


def load_trainable(path: str | Path, *, max_positions: int = 4096) -> TrainableGptOss:
    """The inverse of :func:`export_checkpoint`: a trainable model holding a checkpoint's weights
    (MXFP4 tensors decoded), to continue training from it."""
    weights = load_weights(path, dtype=torch.float32)
    model = TrainableGptOss(weights.config, max_positions=max_positions)
    with torch.no_grad():
        model.embedding.copy_(weights.embedding)
        model.unembedding.copy_(weights.unembedding)
        model.norm.copy_(weights.norm)
        for block, lw in zip(model.blocks, weights.layers, strict=True):
            pairs = [(block.attn_norm, lw.attn_norm), (block.qkv.weight, lw.qkv_weight),
                     (block.qkv.bias, lw.qkv_bias), (block.sinks, lw.sinks),
                     (block.out.weight, lw.out_weight), (block.out.bias, lw.out_bias),
                     (block.mlp_norm, lw.mlp_norm), (block.gate.weight, lw.gate_weight),
                     (block.gate.bias, lw.gate_bias), (block.mlp1_bias, lw.mlp1_bias),
                     (block.mlp2_bias, lw.mlp2_bias),
                     (block.mlp1_weight, mxfp4.dequantize(lw.mlp1_blocks, lw.mlp1_scales, layout="engine")),
                     (block.mlp2_weight, mxfp4.dequantize(lw.mlp2_blocks, lw.mlp2_scales, layout="engine"))]
            for param, value in pairs:
                param.copy_(value)
    return model
