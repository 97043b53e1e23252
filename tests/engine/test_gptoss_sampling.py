"""The packed greedy choice that decode graphs compute on the GPU (``sampling.pack_greedy``):
one int64 per row whose largest value is argmax's choice, so programs combine theirs with an
atomic max. Here its reference form, on the CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from agent.engine.gptoss.sampling import NO_CHOICE, pack_greedy, unpack_greedy  # noqa: E402


def test_the_packed_choice_is_argmaxs_choice() -> None:
    """Rows with ties (argmax takes the first), only negative logits, -0.0 beside 0.0 and
    -inf: the packed value unpacks to argmax's index."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3000, generator=gen)
    logits[1, [7, 2000, 2999]] = 50.0  # tie across distant columns
    logits[2] = -logits[2].abs() - 1.0  # every logit negative
    logits[3, :] = float("-inf")
    logits[3, [10, 11]] = -3.0
    logits[4, :] = -1.0
    logits[4, 5] = -0.0
    logits[4, 9] = 0.0  # equal to -0.0: argmax keeps column 5
    logits[5, :] = 2.5  # all equal
    packed = pack_greedy(logits)
    assert packed.dtype == torch.int64 and packed.shape == (6,)
    assert [unpack_greedy(v) for v in packed.tolist()] == logits.argmax(-1).tolist() == [
        int(logits[0].argmax()), 7, int(logits[2].argmax()), 10, 5, 0,
    ]  # fmt: skip
    assert all(v > NO_CHOICE for v in packed.tolist())


def test_the_largest_packed_value_is_the_choice_over_any_split() -> None:
    """Columns cut into pieces, each packed alone at its own offset: the max over the pieces is
    the whole row's packed choice (the atomic max the kernels do)."""
    gen = torch.Generator().manual_seed(1)
    for trial in range(20):
        shift = -4.0 if trial % 3 == 0 else 0.0  # every third trial: mostly negative logits
        logits = torch.randn(3, 997, generator=gen) * (1 if trial % 2 else -1) + shift
        logits[:, 500] = logits[:, 13]  # ties across pieces
        whole = pack_greedy(logits)
        best = torch.full((3,), NO_CHOICE, dtype=torch.int64)
        for lo in range(0, 997, 64):
            piece = torch.full_like(logits, float("-inf"))
            piece[:, lo : lo + 64] = logits[:, lo : lo + 64]
            best = torch.maximum(best, pack_greedy(piece))
        assert torch.equal(best, whole)


def test_a_forward_pass_writes_its_rows_greedy_choices(checkpoints: Callable[..., Path]) -> None:
    """``GptOssModel.forward`` with a choice buffer (the graphs' form, here the PyTorch path):
    each row's packed argmax of the logits it returns; ``decode_greedy`` declines on the CPU
    (no graph) before running anything, and greedy tokens feed an eager step as their ids."""
    from agent.engine.gptoss import load_weights
    from agent.engine.gptoss.kv_cache import KVCache
    from agent.engine.gptoss.model import GptOssModel
    from agent.engine.gptoss.sampling import GreedyTokens

    weights = load_weights(checkpoints("tiny"), device="cpu", dtype=torch.float32)
    model = GptOssModel(weights, max_positions=64)
    cache = KVCache(weights.config, num_blocks=8, block_size=16, num_rings=2, prefill_chunk=8,
                    device=torch.device("cpu"), dtype=torch.float32)  # fmt: skip
    seqs = [cache.allocate(), cache.allocate()]
    for seq in seqs:
        cache.reserve(seq, 8)
    meta = cache.build_meta(seqs, [0, 0], [3, 3])
    best = torch.full((2,), NO_CHOICE, dtype=torch.int64)
    tokens = torch.tensor([[1, 2, 3], [4, 5, 6]])
    logits = model.forward(tokens, meta, cache, torch.tensor([2, 1]), best=best)
    assert torch.equal(best, pack_greedy(logits))
    assert model.decode_greedy([7, 8], seqs, cache) is None and [q.length for q in seqs] == [3, 3]
    chosen = GreedyTokens(best, best, None)  # type: ignore[arg-type]
    fed = model.decode(chosen, seqs, cache)
    assert torch.equal(fed, model_step(weights, tokens, logits.argmax(-1)))


def model_step(weights: object, tokens: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
    """The step after ``tokens`` (both rows read all three), fed ``picks`` as host ids."""
    from agent.engine.gptoss.kv_cache import KVCache
    from agent.engine.gptoss.model import GptOssModel

    model = GptOssModel(weights, max_positions=64)  # type: ignore[arg-type]
    cache = KVCache(model.config, num_blocks=8, block_size=16, num_rings=2, prefill_chunk=8,
                    device=torch.device("cpu"), dtype=torch.float32)  # fmt: skip
    seqs = [cache.allocate(), cache.allocate()]
    for seq in seqs:
        cache.reserve(seq, 8)
    model.forward(tokens, cache.build_meta(seqs, [0, 0], [3, 3]), cache)
    return model.decode(picks.tolist(), seqs, cache)
