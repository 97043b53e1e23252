"""Next-token choice: greedy, temperature and nucleus (top-p), reproducible per request.

Tokens are chosen on the logits' device and stay there (:func:`sample_tokens`), so the engine can
feed them to the next decode step before the host has read them (``EngineCore``'s run-ahead).

A decode step's CUDA graph also chooses its greedy tokens itself (:class:`GreedyTokens`), in the
*packed* form of :func:`pack_greedy`: one int64 per row whose largest value is argmax's choice,
so the unembedding's programs combine theirs with one atomic max each and no launch is left
between one replay and the next.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

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


NO_CHOICE = -(2**63)  # below every packed choice: a row's value before the atomics reach it
_LOW = 0xFFFFFFFF


def pack_greedy(logits: torch.Tensor) -> torch.Tensor:
    """Each row's argmax of float32 ``logits [B, V]`` packed as int64 ``[B]``: the logit's bits,
    made to order as signed integers order, in the high half; the index subtracted from
    ``2 ** 32 - 1`` in the low half. The largest packed value of a row is its first largest
    logit, the choice ``argmax`` makes (``-0.0`` counts as ``0.0``). The kernels that compute
    the logits pack the same way (``linear._greedy_key``); this is their reference."""
    index = logits.argmax(dim=-1)
    value = logits.gather(-1, index[:, None])[:, 0].float() + 0.0  # -0.0 + 0.0 is 0.0
    bits = value.view(torch.int32).to(torch.int64)
    key = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (key << 32) | (_LOW - index)


def unpack_greedy(packed: int) -> int:
    """The token id in one :func:`pack_greedy` value."""
    return _LOW - (packed & _LOW)


@dataclass(frozen=True, slots=True)
class GreedyTokens:
    """A decode step's greedy tokens, chosen inside its CUDA graph and not read yet. The next
    step's graph can take them straight from ``packed`` (its metadata launch unpacks them);
    the replay itself copies them to ``host``. Both stay valid until the same graph replays
    again (``DecodeGraphs`` alternates a bucket's two graphs while such tokens feed a step)."""

    packed: torch.Tensor  # [B] int64 on the device, pack_greedy's form
    host: torch.Tensor  # [B] int64, pinned: the same values once ``ready`` is reached
    ready: torch.cuda.Event  # recorded after the replay

    def tokens(self) -> torch.Tensor:
        """The token ids as an int64 ``[B]`` device tensor (for a step that runs eagerly)."""
        return _LOW - (self.packed & _LOW)

    def tolist(self) -> list[int]:
        """Wait for the replay and read the token ids."""
        self.ready.synchronize()
        return [unpack_greedy(v) for v in self.host.tolist()]


# A decode step's input tokens: from the host, sampled on the device, or chosen in a graph.
StepTokens = list[int] | torch.Tensor | GreedyTokens
