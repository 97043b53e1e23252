"""Write random gpt-oss checkpoints in either layout, for tests and benchmarks.

Experts are MXFP4 like the released weights; everything else is bfloat16 (or ``dtype``). The
writer produces one layer at a time and writes shard by shard, so the full 20b/120b shapes need
about one layer of memory.

Usage::

    python -m agent.engine.gptoss.random_checkpoint --layout hf --preset tiny OUT
    python -m agent.engine.gptoss.random_checkpoint --layout original --preset 20b OUT
    python -m agent.engine.gptoss.random_checkpoint --preset custom --set num_experts=8 OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import structlog
import torch
from safetensors.torch import save_file

from .checkpoint import expected_shapes, hf_names
from .config import ModelConfig

log = structlog.get_logger(__name__)

_SHARED = dict(
    head_dim=64, num_attention_heads=64, num_key_value_heads=8, sliding_window=128,
    initial_context_length=4096, rope_theta=150000.0, rope_scaling_factor=32.0,
    rope_ntk_alpha=1.0, rope_ntk_beta=32.0, swiglu_limit=7.0, vocab_size=201088,
    hidden_size=2880, intermediate_size=2880, experts_per_token=4,
)  # fmt: skip
# The released models' shapes (gpt-oss model card); "tiny" keeps every feature at toy size.
PRESETS: dict[str, ModelConfig] = {
    "20b": ModelConfig(num_hidden_layers=24, num_experts=32, **_SHARED),  # type: ignore[arg-type]
    "120b": ModelConfig(num_hidden_layers=36, num_experts=128, **_SHARED),  # type: ignore[arg-type]
    "tiny": ModelConfig(
        num_hidden_layers=4,
        num_experts=8,
        experts_per_token=2,
        vocab_size=512,
        hidden_size=128,
        intermediate_size=64,
        head_dim=16,
        num_attention_heads=8,
        num_key_value_heads=2,
        sliding_window=8,
        initial_context_length=64,
        rope_theta=150000.0,
        rope_scaling_factor=32.0,
        rope_ntk_alpha=1.0,
        rope_ntk_beta=32.0,
        swiglu_limit=7.0,
    ),  # fmt: skip
}
_E2M1_RMS = math.sqrt(sum(v * v for v in (0, 0.5, 1, 1.5, 2, 3, 4, 6)) / 8)


def preset(name: str, **overrides: object) -> ModelConfig:
    """A named shape (``tiny``, ``20b``, ``120b``; ``custom`` = tiny) with fields replaced."""
    base = PRESETS["tiny" if name == "custom" else name]
    overrides.setdefault("layer_types", None)  # re-derive the alternating pattern
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def _tensor(
    name: str, shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator
) -> torch.Tensor:
    if name.endswith(".blocks"):
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    if name.endswith(".scales"):
        # Pick 2**exp so a block's values have std ~ 1/sqrt(fan_in), like a trained layer.
        fan_in = shape[-1] * 32
        exp = round(-math.log2(math.sqrt(fan_in) * _E2M1_RMS))
        jitter = torch.randint(-1, 2, shape, generator=gen)
        return (127 + exp + jitter).to(torch.uint8)
    if name.endswith("norm.scale"):
        return (1 + 0.1 * torch.randn(shape, generator=gen)).to(dtype)
    if name.endswith("sinks"):
        return torch.randn(shape, generator=gen).to(dtype)
    if len(shape) == 1 or name.endswith("_bias"):
        return (0.1 * torch.randn(shape, generator=gen)).to(dtype)
    std = 1.0 if name == "embedding.weight" else 1 / math.sqrt(shape[-1])
    return (std * torch.randn(shape, generator=gen)).to(dtype)


def _groups(config: ModelConfig) -> Iterator[list[str]]:
    """Original tensor names grouped per shard: embedding, each layer, then the head."""
    shapes = expected_shapes(config)
    yield ["embedding.weight"]
    for i in range(config.num_hidden_layers):
        yield [n for n in shapes if n.startswith(f"block.{i}.")]
    yield ["norm.scale", "unembedding.weight"]


def _to_hf(config: ModelConfig, name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    names = hf_names(name)
    if len(names) == 1:
        return {names[0]: tensor}
    d = config.head_dim
    sizes = (
        config.num_attention_heads * d,
        config.num_key_value_heads * d,
        config.num_key_value_heads * d,
    )
    return {n: t.contiguous() for n, t in zip(names, torch.split(tensor, list(sizes)), strict=True)}


def write_random_checkpoint(
    out: str | Path,
    config: ModelConfig,
    *,
    layout: Literal["original", "hf"] = "hf",
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Write a random checkpoint of ``config`` to directory ``out`` and return it.

    Both layouts hold exactly the same numbers for the same ``seed``. The HF layout also gets a
    ``model.safetensors.index.json``; the original layout is a directory of shards.
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    shapes = expected_shapes(config)
    groups = list(_groups(config))
    weight_map: dict[str, str] = {}
    total = 0
    for n, group in enumerate(groups):
        shard: dict[str, torch.Tensor] = {}
        for name in group:
            tensor = _tensor(name, shapes[name], dtype, gen)
            shard |= {name: tensor} if layout == "original" else _to_hf(config, name, tensor)
        file = f"model-{n + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file(shard, str(root / file), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(shard, file)
        total += sum(t.numel() * t.element_size() for t in shard.values())
        del shard  # one shard in memory at a time
    raw = config.to_original() if layout == "original" else config.to_hf()
    (root / "config.json").write_text(json.dumps(raw, indent=2))
    if layout == "hf":
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (root / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    log.info("random_checkpoint.written", root=str(root), layout=layout, bytes=total)
    return root


def _parse_set(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    types = {f.name: f.type for f in dataclasses.fields(ModelConfig)}
    for item in items:
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"unknown config field {key!r}")
        out[key] = float(value) if "float" in str(types[key]) else int(value)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("--layout", choices=("original", "hf"), default="hf")
    parser.add_argument("--preset", choices=(*PRESETS, "custom"), default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    args = parser.parse_args(argv)
    config = preset(args.preset, **_parse_set(args.set))
    write_random_checkpoint(
        args.out, config, layout=args.layout, seed=args.seed, dtype=getattr(torch, args.dtype)
    )


if __name__ == "__main__":
    main()
