"""Load gpt-oss weights from either on-disk layout, lazily and shard by shard.

Layouts:
- ``original``: the reference implementation's names (``block.{i}.attn.qkv.weight``, ...), one
  or more ``*.safetensors`` next to a ``config.json`` with ``num_experts``-style keys; a Hugging
  Face repo keeps it under ``original/``.
- ``hf``: ``config.json`` with ``model_type: gpt_oss``, ``model.safetensors`` or
  ``model.safetensors.index.json`` plus shards, names ``model.layers.{i}.self_attn.q_proj.weight``.

Everything is addressed by its *original* name; the HF spelling is a mapping (q/k/v are
concatenated into ``qkv``). Files are opened with ``safe_open`` (memory-mapped) and each tensor is
read, checked and moved to the target device one at a time, so peak host memory is one tensor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
import torch
from safetensors import SafetensorError, safe_open

from agent.errors import UserError

from .config import ConfigError, ModelConfig, read_config
from .mxfp4 import BLOCK_SIZE, BYTES_PER_BLOCK

log = structlog.get_logger(__name__)

Layout = Literal["original", "hf"]
_FLOAT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


class CheckpointError(UserError):
    """A checkpoint file is missing, truncated, or holds a tensor of the wrong name/shape/dtype.

    Attributes:
        tensor: the tensor's name in the file (None when the whole file is at fault).
        file: the file at fault.
    """

    def __init__(self, message: str, *, tensor: str | None = None, file: Path | None = None):
        where = ", ".join(
            p for p in (f"tensor {tensor}" if tensor else "", f"file {file}" if file else "") if p
        )
        super().__init__(f"{message} ({where})" if where else message)
        self.tensor = tensor
        self.file = file


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a checkpoint lives and how it is spelled."""

    root: Path
    layout: Layout
    config: ModelConfig
    weight_map: dict[str, Path]  # tensor name in the file -> shard holding it


# Released checkpoints keep these bf16; a small model may store them as MXFP4 ``NAME.blocks`` /
# ``NAME.scales`` instead (the 201k-row vocabulary dominates a tiny model's size), which the
# loader decodes once. Only the original layout has this spelling.
QUANTIZABLE_DENSE = ("embedding.weight", "unembedding.weight")


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a gpt-oss checkpoint by original name, with its shape (the optional
    MXFP4 spellings of :data:`QUANTIZABLE_DENSE` included)."""
    h, e, i2 = cfg.hidden_size, cfg.num_experts, 2 * cfg.intermediate_size
    qkv = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * cfg.head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "embedding.weight": (cfg.vocab_size, h),
        "norm.scale": (h,),
        "unembedding.weight": (cfg.vocab_size, h),
    }
    for name in QUANTIZABLE_DENSE:  # optional MXFP4 spelling (original layout only)
        shapes |= {
            f"{name}.blocks": (cfg.vocab_size, h // BLOCK_SIZE, BYTES_PER_BLOCK),
            f"{name}.scales": (cfg.vocab_size, h // BLOCK_SIZE),
        }
    for n in range(cfg.num_hidden_layers):
        b = f"block.{n}"
        shapes |= {
            f"{b}.attn.norm.scale": (h,),
            f"{b}.attn.qkv.weight": (qkv, h),
            f"{b}.attn.qkv.bias": (qkv,),
            f"{b}.attn.sinks": (cfg.num_attention_heads,),
            f"{b}.attn.out.weight": (h, cfg.num_attention_heads * cfg.head_dim),
            f"{b}.attn.out.bias": (h,),
            f"{b}.mlp.norm.scale": (h,),
            f"{b}.mlp.gate.weight": (e, h),
            f"{b}.mlp.gate.bias": (e,),
            f"{b}.mlp.mlp1_weight.blocks": (e, i2, h // BLOCK_SIZE, BYTES_PER_BLOCK),
            f"{b}.mlp.mlp1_weight.scales": (e, i2, h // BLOCK_SIZE),
            f"{b}.mlp.mlp1_bias": (e, i2),
            f"{b}.mlp.mlp2_weight.blocks": (
                e, h, cfg.intermediate_size // BLOCK_SIZE, BYTES_PER_BLOCK,
            ),
            f"{b}.mlp.mlp2_weight.scales": (e, h, cfg.intermediate_size // BLOCK_SIZE),
            f"{b}.mlp.mlp2_bias": (e, h),
        }  # fmt: skip
    return shapes


_HF_BLOCK = {
    "attn.norm.scale": "input_layernorm.weight",
    "attn.sinks": "self_attn.sinks",
    "attn.out.weight": "self_attn.o_proj.weight",
    "attn.out.bias": "self_attn.o_proj.bias",
    "mlp.norm.scale": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.router.weight",
    "mlp.gate.bias": "mlp.router.bias",
    "mlp.mlp1_weight.blocks": "mlp.experts.gate_up_proj_blocks",
    "mlp.mlp1_weight.scales": "mlp.experts.gate_up_proj_scales",
    "mlp.mlp1_bias": "mlp.experts.gate_up_proj_bias",
    "mlp.mlp2_weight.blocks": "mlp.experts.down_proj_blocks",
    "mlp.mlp2_weight.scales": "mlp.experts.down_proj_scales",
    "mlp.mlp2_bias": "mlp.experts.down_proj_bias",
}
_HF_TOP = {
    "embedding.weight": "model.embed_tokens.weight",
    "norm.scale": "model.norm.weight",
    "unembedding.weight": "lm_head.weight",
}


def hf_names(name: str) -> tuple[str, ...]:
    """The HF tensor name(s) holding original tensor ``name`` (qkv is three HF tensors)."""
    if name in _HF_TOP:
        return (_HF_TOP[name],)
    _, layer, rest = name.split(".", 2)
    prefix = f"model.layers.{layer}."
    if rest.startswith("attn.qkv."):
        kind = rest.rsplit(".", 1)[1]  # weight | bias
        return tuple(f"{prefix}self_attn.{p}_proj.{kind}" for p in "qkv")
    return (prefix + _HF_BLOCK[rest],)


def open_checkpoint(path: str | Path) -> Checkpoint:
    """Find the layout, read the config and list which shard holds which tensor.

    ``path`` is a checkpoint directory of either layout, or a HF repo whose HF files are absent
    but which has ``original/``.

    Raises:
        CheckpointError: no checkpoint there, or an unreadable shard / index.
        ConfigError: config.json is missing or invalid.
    """
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError("checkpoint directory does not exist", file=root)
    if not (root / "config.json").exists() and (root / "original" / "config.json").exists():
        root = root / "original"
    config, layout = read_config(root / "config.json")
    index = root / "model.safetensors.index.json"
    if index.exists():
        try:
            raw = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"unreadable shard index: {exc}", file=index) from exc
        weight_map = {str(k): root / str(v) for k, v in raw.items()}
    else:
        weight_map = _scan_shards(root)
    log.info("checkpoint.open", root=str(root), layout=layout, tensors=len(weight_map))
    return Checkpoint(root=root, layout=layout, config=config, weight_map=weight_map)


def _scan_shards(root: Path) -> dict[str, Path]:
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise CheckpointError("no *.safetensors files", file=root)
    weight_map: dict[str, Path] = {}
    for file in files:
        with _mapped(file) as handle:
            weight_map.update(dict.fromkeys(handle.keys(), file))
    return weight_map


@contextmanager
def _mapped(file: Path) -> Iterator[Any]:
    if not file.exists():
        raise CheckpointError("shard file is missing", file=file)
    try:
        handle = safe_open(str(file), framework="pt", device="cpu")
    except (SafetensorError, OSError) as exc:
        # safetensors checks at open that the data section covers every tensor: truncation ends here.
        raise CheckpointError(
            f"unreadable or truncated safetensors file: {exc}", file=file
        ) from exc
    with handle:
        yield handle


class TensorSource:
    """Reads tensors by original name from an open checkpoint, validating each one.

    Use as a context manager: shards are opened on first use and closed on exit.
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        self._ckpt = checkpoint
        self._shapes = expected_shapes(checkpoint.config)
        self._stack = ExitStack()
        self._open: dict[Path, Any] = {}

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._open.clear()

    def get(self, name: str, *, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
        """Tensor ``name`` (original spelling) checked for shape and dtype, cast to ``dtype``.

        ``dtype=None`` keeps MXFP4 tensors (uint8) as they are.

        Raises:
            CheckpointError: missing tensor, wrong shape, or unsupported dtype.
        """
        parts = (name,) if self._ckpt.layout == "original" else hf_names(name)
        pieces = [self._read(part, expect_uint8=dtype is None) for part in parts]
        tensor = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)
        if tuple(tensor.shape) != self._shapes[name]:
            raise CheckpointError(
                f"shape {tuple(tensor.shape)} but the config implies {self._shapes[name]}",
                tensor=" + ".join(parts),
                file=self._ckpt.weight_map[parts[0]],
            )
        return tensor.to(device=device, dtype=dtype if dtype is not None else tensor.dtype)

    def _read(self, name: str, *, expect_uint8: bool) -> torch.Tensor:
        file = self._ckpt.weight_map.get(name)
        if file is None:
            raise CheckpointError(
                f"missing tensor in the {self._ckpt.layout} checkpoint",
                tensor=name,
                file=self._ckpt.root,
            )
        handle = self._open.get(file)
        if handle is None:
            handle = self._stack.enter_context(_mapped(file))
            self._open[file] = handle
        try:
            tensor: torch.Tensor = handle.get_tensor(name)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise CheckpointError(f"cannot read tensor: {exc}", tensor=name, file=file) from exc
        ok = tensor.dtype == torch.uint8 if expect_uint8 else tensor.dtype in _FLOAT_DTYPES
        if not ok:
            want = "uint8 (MXFP4)" if expect_uint8 else "bfloat16/float16/float32"
            raise CheckpointError(
                f"unsupported dtype {tensor.dtype}, expected {want}", tensor=name, file=file
            )
        return tensor


__all__ = ["Checkpoint", "CheckpointError", "ConfigError", "TensorSource", "open_checkpoint"]
