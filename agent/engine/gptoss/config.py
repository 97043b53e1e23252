"""The shape and hyper-parameters of a gpt-oss model, read from a checkpoint's ``config.json``.

Two spellings exist on disk: the reference ``original/config.json`` (``num_experts``,
``rope_scaling_factor``, ...) and the Hugging Face one (``model_type: gpt_oss``,
``num_local_experts``, ``rope_scaling``/``rope_parameters``, ``layer_types``). Both become one
frozen :class:`ModelConfig`; nothing in the engine hard-codes a model size.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.errors import UserError

LayerType = Literal["sliding_attention", "full_attention"]


class ConfigError(UserError):
    """A checkpoint's ``config.json`` is missing, unreadable or inconsistent."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    num_hidden_layers: int
    num_experts: int
    experts_per_token: int
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    head_dim: int
    num_attention_heads: int
    num_key_value_heads: int
    sliding_window: int
    initial_context_length: int
    rope_theta: float
    rope_scaling_factor: float
    rope_ntk_alpha: float
    rope_ntk_beta: float
    swiglu_limit: float
    swiglu_alpha: float = 1.702  # fixed in gpt-oss; HF exposes it as swiglu_alpha
    rms_norm_eps: float = 1e-5
    # None means gpt-oss' pattern: even layers use the sliding window, odd layers see everything.
    layer_types: tuple[LayerType, ...] | None = None

    def __post_init__(self) -> None:
        if self.layer_types is None:
            pattern: tuple[LayerType, ...] = tuple(
                "sliding_attention" if i % 2 == 0 else "full_attention"
                for i in range(self.num_hidden_layers)
            )
            object.__setattr__(self, "layer_types", pattern)
        self._validate()

    def _validate(self) -> None:
        problems = []
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append("num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim % 2:
            problems.append("head_dim must be even (RoPE rotates pairs)")
        if self.hidden_size % 32 or self.intermediate_size % 32:
            problems.append("hidden_size and intermediate_size must be multiples of 32 (MXFP4)")
        if not 0 < self.experts_per_token <= self.num_experts:
            problems.append("experts_per_token must be in [1, num_experts]")
        if len(self.layer_types or ()) != self.num_hidden_layers:
            problems.append("layer_types must have one entry per layer")
        if any(t not in ("sliding_attention", "full_attention") for t in self.layer_types or ()):
            problems.append("layer_types entries must be sliding_attention or full_attention")
        if self.sliding_window < 1:
            problems.append("sliding_window must be >= 1")
        if problems:
            raise ConfigError("invalid gpt-oss config: " + "; ".join(problems))

    @property
    def sliding_layers(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.layer_types or ()) if t == "sliding_attention")

    @property
    def full_layers(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.layer_types or ()) if t == "full_attention")

    @property
    def rope_concentration(self) -> float:
        # YaRN's attention temperature: both q and k are scaled by it.
        if self.rope_scaling_factor <= 1.0:
            return 1.0
        return 0.1 * math.log(self.rope_scaling_factor) + 1.0

    # -- the two on-disk spellings ---------------------------------------------------------

    @classmethod
    def from_original(cls, raw: dict[str, Any]) -> ModelConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        kwargs = {k: raw[k] for k in names if k in raw}
        if "layer_types" in kwargs:
            kwargs["layer_types"] = tuple(kwargs["layer_types"])
        return _build(cls, kwargs)

    @classmethod
    def from_hf(cls, raw: dict[str, Any]) -> ModelConfig:
        rope = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
        rope_type = rope.get("rope_type", rope.get("type", "yarn"))
        if rope_type not in ("yarn", "default"):
            raise ConfigError(f"unsupported rope_type {rope_type!r} (gpt-oss uses yarn)")
        kwargs: dict[str, Any] = {
            "num_hidden_layers": raw.get("num_hidden_layers"),
            "num_experts": raw.get("num_local_experts", raw.get("num_experts")),
            "experts_per_token": raw.get("num_experts_per_tok", raw.get("experts_per_token")),
            "vocab_size": raw.get("vocab_size"),
            "hidden_size": raw.get("hidden_size"),
            "intermediate_size": raw.get("intermediate_size"),
            "head_dim": raw.get("head_dim"),
            "num_attention_heads": raw.get("num_attention_heads"),
            "num_key_value_heads": raw.get("num_key_value_heads"),
            "sliding_window": raw.get("sliding_window"),
            "initial_context_length": rope.get(
                "original_max_position_embeddings", raw.get("initial_context_length")
            ),
            "rope_theta": rope.get("rope_theta", raw.get("rope_theta")),
            "rope_scaling_factor": rope.get("factor", 1.0) if rope_type == "yarn" else 1.0,
            "rope_ntk_alpha": rope.get("beta_slow", 1.0),
            "rope_ntk_beta": rope.get("beta_fast", 32.0),
            "swiglu_limit": raw.get("swiglu_limit", 7.0),
            "swiglu_alpha": raw.get("swiglu_alpha", 1.702),
            "rms_norm_eps": raw.get("rms_norm_eps", 1e-5),
        }
        if raw.get("layer_types") is not None:
            kwargs["layer_types"] = tuple(raw["layer_types"])
        return _build(cls, {k: v for k, v in kwargs.items() if v is not None})

    def to_original(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["layer_types"] = list(self.layer_types or ())
        return out

    def to_hf(self) -> dict[str, Any]:
        return {
            "architectures": ["GptOssForCausalLM"],
            "model_type": "gpt_oss",
            "num_hidden_layers": self.num_hidden_layers,
            "num_local_experts": self.num_experts,
            "num_experts_per_tok": self.experts_per_token,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "head_dim": self.head_dim,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "sliding_window": self.sliding_window,
            "layer_types": list(self.layer_types or ()),
            "initial_context_length": self.initial_context_length,
            "max_position_embeddings": int(self.initial_context_length * self.rope_scaling_factor),
            "rope_theta": self.rope_theta,
            "rope_scaling": {
                "rope_type": "yarn",
                "factor": self.rope_scaling_factor,
                "beta_fast": self.rope_ntk_beta,
                "beta_slow": self.rope_ntk_alpha,
                "truncate": False,
                "original_max_position_embeddings": self.initial_context_length,
            },
            "swiglu_limit": self.swiglu_limit,
            "swiglu_alpha": self.swiglu_alpha,
            "rms_norm_eps": self.rms_norm_eps,
            "attention_bias": True,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "torch_dtype": "bfloat16",
            "quantization_config": {
                "quant_method": "mxfp4",
                "modules_to_not_convert": [
                    "model.layers.*.self_attn",
                    "model.layers.*.mlp.router",
                    "model.embed_tokens",
                    "lm_head",
                ],
            },
        }


def _build(cls: type[ModelConfig], kwargs: dict[str, Any]) -> ModelConfig:
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise ConfigError(f"config.json lacks {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid gpt-oss config: {exc}") from exc


def read_config(path: Path) -> tuple[ModelConfig, Literal["original", "hf"]]:
    """Read ``config.json`` at ``path`` and tell which layout it belongs to.

    Raises:
        ConfigError: the file is missing, is not JSON, or lacks a required key.
    """
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"no config.json at {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    if raw.get("model_type") == "gpt_oss":
        return ModelConfig.from_hf(raw), "hf"
    if raw.get("model_type") is not None:
        raise ConfigError(f"{path}: model_type {raw['model_type']!r} is not gpt_oss")
    return ModelConfig.from_original(raw), "original"
