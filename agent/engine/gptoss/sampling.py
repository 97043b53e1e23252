"""Next-token choice: greedy, temperature and nucleus (top-p), reproducible per request.

Tokens are chosen on the logits' device and stay there (:func:`sample_tokens`), so the engine can
feed them to the next decode step before the host has read them (``EngineCore``'s run-ahead).
"""

from __future__ import annotations

import secrets

import torch

from agent.engine.base import SamplingParams


def make_generator(params: SamplingParams, device: torch.device) -> torch.Generator | None:
    """A private random stream per request, so its samples never depend on its batch-mates."""
    if params.temperature == 0:
        return None
    seed = params.seed if params.seed is not None else secrets.randbits(63)
    return torch.Generator(device=device).manual_seed(seed)


def _sample_row(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator
) -> torch.Tensor:
    """One token from float32 ``logits [V]`` at ``params.temperature > 0``: a ``[1]`` tensor on
    the logits' device (no host synchronisation)."""
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the top token always survives).
        before = sorted_probs.cumsum(-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(before >= params.top_p, 0.0)
        return order[torch.multinomial(sorted_probs, 1, generator=generator)]
    return torch.multinomial(probs, 1, generator=generator)


def sample_tokens(
    logits: torch.Tensor,
    params: list[SamplingParams],
    generators: list[torch.Generator | None],
) -> torch.Tensor:
    """One token per row of ``logits [B, V]`` as an int64 ``[B]`` tensor on their device, with no
    host synchronisation; greedy rows share one ``argmax``."""
    tokens = logits.argmax(dim=-1)
    for i, (p, g) in enumerate(zip(params, generators, strict=True)):
        if p.temperature != 0 and g is not None:
            tokens[i : i + 1] = _sample_row(logits[i], p, g)
    return tokens


def sample_batch(
    logits: torch.Tensor,
    params: list[SamplingParams],
    generators: list[torch.Generator | None],
) -> list[int]:
    """:func:`sample_tokens`, read back to the host."""
    return sample_tokens(logits, params, generators).tolist()
