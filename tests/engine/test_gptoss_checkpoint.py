"""Loading both checkpoint layouts, and clear errors for malformed ones."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from agent.engine.gptoss import (  # noqa: E402
    CheckpointError,
    ConfigError,
    ModelConfig,
    load_weights,
    open_checkpoint,
)
from agent.engine.gptoss.weights import LayerWeights  # noqa: E402
from agent.errors import UserError  # noqa: E402

Checkpoints = Callable[..., Path]


def test_both_layouts_load_the_same_numbers(checkpoints: Checkpoints) -> None:
    hf = load_weights(checkpoints("tiny", "hf"), dtype=torch.float32)
    orig = load_weights(checkpoints("tiny", "original"), dtype=torch.float32)
    assert hf.config == orig.config
    assert torch.equal(hf.embedding, orig.embedding) and torch.equal(
        hf.unembedding, orig.unembedding
    )
    for a, b in zip(hf.layers, orig.layers, strict=True):
        for name in LayerWeights.__slots__:  # type: ignore[attr-defined]
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert hf.layers[0].mlp1_blocks.dtype == torch.uint8  # experts stay MXFP4 in memory


def test_experts_load_in_the_engine_layout(checkpoints: Checkpoints) -> None:
    """The kernels read the experts' bytes in the engine's layout (mxfp4.py): the loader relays
    them once; scales stay as stored."""
    from agent.engine.gptoss import mxfp4
    from agent.engine.gptoss.checkpoint import TensorSource

    ckpt = open_checkpoint(checkpoints("tiny", "original"))
    with TensorSource(ckpt) as src:
        raw = src.get("block.1.mlp.mlp2_weight.blocks", device=torch.device("cpu"), dtype=None)
        scales = src.get("block.1.mlp.mlp2_weight.scales", device=torch.device("cpu"), dtype=None)
    w = load_weights(ckpt, dtype=torch.float32)
    assert not torch.equal(w.layers[1].mlp2_blocks, raw)
    assert torch.equal(w.layers[1].mlp2_blocks, mxfp4.to_engine_layout(raw))
    assert torch.equal(w.layers[1].mlp2_scales, scales)


def test_hf_repo_with_only_original_subdir(checkpoints: Checkpoints, tmp_path: Path) -> None:
    shutil.copytree(checkpoints("tiny", "original"), tmp_path / "original")
    ckpt = open_checkpoint(tmp_path)
    assert ckpt.layout == "original" and ckpt.root == tmp_path / "original"


def test_config_round_trips_through_both_spellings() -> None:
    from gptoss_helpers import CONFIGS

    for cfg in CONFIGS.values():
        assert ModelConfig.from_original(cfg.to_original()) == cfg
        assert ModelConfig.from_hf(cfg.to_hf()) == cfg


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _shard_of(root: Path, name: str) -> Path:
    index = json.loads((root / "model.safetensors.index.json").read_text())["weight_map"]
    return root / index[name]


def _rewrite(file: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    tensors = safetensors_torch.load_file(str(file))
    edit(tensors)
    safetensors_torch.save_file(tensors, str(file))


def test_truncated_file_names_the_file(checkpoints: Checkpoints, tmp_path: Path) -> None:
    root = _copy(checkpoints("tiny", "hf"), tmp_path / "ckpt")
    shard = _shard_of(root, "model.layers.1.mlp.experts.down_proj_blocks")
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_weights(root)
    assert info.value.file == shard and shard.name in str(info.value)


def test_missing_tensor_names_tensor(checkpoints: Checkpoints, tmp_path: Path) -> None:
    root = _copy(checkpoints("tiny", "original"), tmp_path / "ckpt")
    name = "block.2.attn.sinks"
    shard = next(
        p for p in root.glob("*.safetensors") if name in safetensors_torch.load_file(str(p))
    )
    _rewrite(shard, lambda t: t.pop(name))
    with pytest.raises(CheckpointError, match="missing tensor") as info:
        load_weights(root)
    assert info.value.tensor == name


def test_wrong_shape_names_tensor_and_file(checkpoints: Checkpoints, tmp_path: Path) -> None:
    root = _copy(checkpoints("tiny", "hf"), tmp_path / "ckpt")
    name = "model.layers.0.self_attn.k_proj.weight"
    shard = _shard_of(root, name)
    _rewrite(shard, lambda t: t.__setitem__(name, t[name][:-1].clone()))
    with pytest.raises(CheckpointError, match=r"shape .* config implies") as info:
        load_weights(root)
    assert name in str(info.value) and str(shard) in str(info.value)


def test_unsupported_dtype(checkpoints: Checkpoints, tmp_path: Path) -> None:
    root = _copy(checkpoints("tiny", "hf"), tmp_path / "ckpt")
    name = "model.layers.1.mlp.experts.gate_up_proj_scales"
    _rewrite(_shard_of(root, name), lambda t: t.__setitem__(name, t[name].to(torch.int32)))
    with pytest.raises(CheckpointError, match="unsupported dtype torch.int32") as info:
        load_weights(root)
    assert info.value.tensor == name


def test_bad_paths_and_configs(checkpoints: Checkpoints, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tmp_path / "nope")
    root = _copy(checkpoints("tiny", "hf"), tmp_path / "ckpt")
    raw = json.loads((root / "config.json").read_text())
    del raw["hidden_size"]
    (root / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="hidden_size"):
        load_weights(root)
    (root / "config.json").write_text(json.dumps(raw | {"model_type": "llama"}))
    with pytest.raises(ConfigError, match="llama"):
        open_checkpoint(root)
    (root / "config.json").write_text("{not json")
    with pytest.raises(UserError):
        open_checkpoint(root)


def test_cli_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from agent.engine.gptoss.random_checkpoint import main

    # In-process: the same argv a shell would pass, without paying a second torch import.
    main(["--layout", "original", "--preset", "custom", "--set", "num_hidden_layers=1",
          "--set", "vocab_size=64", "--set", "rope_theta=10000", str(tmp_path)])  # fmt: skip
    weights = load_weights(tmp_path, dtype=torch.float32)
    assert weights.config.num_hidden_layers == 1 and weights.embedding.shape[0] == 64
    assert weights.config.rope_theta == 10000.0 and weights.config.layer_types == (
        "sliding_attention",
    )
