"""The trainable module, its export, and the engine reading the export compute the same thing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from agent.demo_model.export import export_checkpoint
from agent.demo_model.model import DEMO_CONFIG, TrainableGptOss, fake_mxfp4
from agent.engine.gptoss import mxfp4
from agent.engine.gptoss.model import GptOssModel, sequence_logits
from agent.engine.gptoss.weights import load_weights

# The demo shape with a small vocabulary and a short window, so the window matters in 40 tokens.
SMALL = dataclasses.replace(DEMO_CONFIG, vocab_size=640, sliding_window=8, layer_types=None)


def trained_looking(cfg=SMALL, seed: int = 0) -> TrainableGptOss:
    """Random weights with non-trivial biases, sinks and norms (zeros would hide mistakes)."""
    torch.manual_seed(seed)
    model = TrainableGptOss(cfg, max_positions=256)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
        # The engine holds dense weights in bf16 on disk: round them here so only MXFP4 remains.
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model


def engine_logits(path: Path, tokens: list[int]) -> torch.Tensor:
    model = GptOssModel(load_weights(path, dtype=torch.float32), max_positions=256)
    return sequence_logits(model, tokens, chunk=16)


def test_fake_mxfp4_equals_the_engine_codec() -> None:
    w = torch.randn(64, 96) * torch.logspace(-3, 2, 64)[:, None]
    blocks, scales = mxfp4.quantize(w)
    assert torch.equal(fake_mxfp4(w), mxfp4.dequantize(blocks, scales))


def test_fake_mxfp4_passes_gradients_straight_through() -> None:
    w = torch.randn(4, 32, requires_grad=True)
    (fake_mxfp4(w) * torch.arange(32.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(32.0).expand(4, 32))


def test_export_is_read_by_the_engine_with_the_same_logits(tmp_path: Path) -> None:
    model = trained_looking()
    root = export_checkpoint(model, tmp_path / "ckpt")
    tokens = torch.randint(0, SMALL.vocab_size, (40,), generator=torch.Generator().manual_seed(1))
    ours = engine_logits(root, tokens.tolist())
    with torch.no_grad():
        theirs = model.logits(tokens[None], quantize=True)[0]
        unquantized = model.logits(tokens[None], quantize=False)[0]
    assert torch.allclose(ours, theirs, atol=2e-3, rtol=1e-3), (ours - theirs).abs().max()
    # The comparison can tell: without MXFP4 rounding the logits differ visibly.
    assert (ours - unquantized).abs().max() > 1e-2


def test_export_layout_and_size(tmp_path: Path) -> None:
    root = export_checkpoint(trained_looking(DEMO_CONFIG), tmp_path / "ckpt")
    config = json.loads((root / "config.json").read_text())
    assert config["vocab_size"] == 201_088 and config["num_experts"] == 8
    with safe_open(str(root / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
        assert f.get_tensor("block.0.mlp.mlp1_weight.blocks").dtype == torch.uint8
    assert {"embedding.weight.blocks", "unembedding.weight.scales", "block.5.attn.sinks"} <= names
    assert "embedding.weight" not in names
    assert (root / "model.safetensors").stat().st_size < 25_000_000


@pytest.mark.parametrize("missing", ["embedding.weight.scales"])
def test_half_a_quantized_matrix_is_a_clear_error(tmp_path: Path, missing: str) -> None:
    from safetensors.torch import load_file, save_file

    from agent.engine.gptoss.checkpoint import CheckpointError

    root = export_checkpoint(trained_looking(), tmp_path / "ckpt")
    tensors = load_file(str(root / "model.safetensors"))
    del tensors[missing]
    save_file(tensors, str(root / "model.safetensors"))
    with pytest.raises(CheckpointError, match=missing):
        load_weights(root)


def test_load_trainable_is_the_inverse_of_export(tmp_path: Path) -> None:
    from agent.demo_model.export import load_trainable

    model = trained_looking()
    root = export_checkpoint(model, tmp_path / "ckpt")
    again = load_trainable(root, max_positions=256)
    tokens = torch.randint(0, SMALL.vocab_size, (1, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(again.logits(tokens, quantize=True), model.logits(tokens, quantize=True),
                              atol=1e-4)
