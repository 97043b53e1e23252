"""Helpers for the gpt-oss engine tests (kept out of conftest so tests can import them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import torch

from agent.engine.base import EngineRequest, Finished, SamplingParams
from agent.engine.gptoss import CoreOptions, EngineCore, ModelConfig
from agent.engine.gptoss.random_checkpoint import preset

# Shapes chosen to exercise every feature at toy size: GQA and MHA, windows shorter and longer
# than the prompts, YaRN on and off, top-1 / top-2 / top-3 routing, several head dims.
CONFIGS: dict[str, ModelConfig] = {
    "tiny": preset("tiny"),
    "mha_window5": preset(
        "custom", num_hidden_layers=3, num_experts=4, experts_per_token=3, vocab_size=300,
        hidden_size=64, intermediate_size=96, head_dim=32, num_attention_heads=4,
        num_key_value_heads=4, sliding_window=5, rope_scaling_factor=1.0,
    ),
    "yarn_top1": preset(
        "custom", num_hidden_layers=2, num_experts=4, experts_per_token=1, vocab_size=257,
        hidden_size=96, intermediate_size=32, head_dim=8, num_attention_heads=6,
        num_key_value_heads=1, sliding_window=64, initial_context_length=4096,
    ),
}  # fmt: skip


def greedy(prompt: Iterable[int], max_tokens: int = 8, **kwargs: object) -> EngineRequest:
    return EngineRequest(
        prompt_tokens=tuple(prompt),
        sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens),
        **kwargs,  # type: ignore[arg-type]
    )


def run_core(core: EngineCore, requests: list[EngineRequest]) -> list[tuple[list[int], Finished]]:
    """Drive a core synchronously; returns (tokens, Finished) per request in order."""
    ids = [core.add(r) for r in requests]
    tokens: dict[int, list[int]] = {i: [] for i in ids}
    done: dict[int, Finished] = {}
    while core.has_work:
        for rid, event in core.step():
            if isinstance(event, Finished):
                done[rid] = event
            else:
                tokens[rid].extend(event.token_ids)
    return [(tokens[i], done[i]) for i in ids]


def make_core(path: Path, **options: object) -> EngineCore:
    opts = dataclasses.replace(
        CoreOptions(max_batch=4, max_context=128, prefill_chunk=16), **options
    )  # type: ignore[arg-type]
    return EngineCore.from_checkpoint(path, device="cpu", dtype=torch.float32, options=opts)
