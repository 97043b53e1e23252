"""Our forward pass and decoding against transformers' GptOssForCausalLM on random tiny models.

Both sides read the very same random checkpoint: transformers through its own MXFP4 loader
(``Mxfp4Config(dequantize=True)``, which decodes the experts into float32 parameters on CPU),
ours keeping the experts MXFP4 and decoding per chosen expert. Everything runs in float32 with
transformers' eager attention, so the weights are bit-identical and only the order of float
operations differs (fused qkv projection, einsum vs matmul, expert summation order): that is
~1e-6 relative, hence ``atol=1e-4`` on logits of magnitude ~1-10.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from gptoss_helpers import CONFIGS, greedy, make_core, run_core  # noqa: E402

from agent.engine.gptoss import load_weights  # noqa: E402
from agent.engine.gptoss.model import GptOssModel, sequence_logits  # noqa: E402

Checkpoints = Callable[..., Path]
ATOL = 1e-4
NAMES = list(CONFIGS)


@functools.cache
def hf_model(path: Path) -> transformers.GptOssForCausalLM:
    logging.getLogger("transformers").setLevel(logging.ERROR)  # "dequantizing on CPU" notice
    transformers.utils.logging.disable_progress_bar()
    model = transformers.GptOssForCausalLM.from_pretrained(
        path,
        quantization_config=transformers.Mxfp4Config(dequantize=True),
        dtype=torch.float32,
        attn_implementation="eager",
    )
    return model.eval()


def prompt(n: int, vocab: int, seed: int = 0) -> list[int]:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def our_logits(path: Path, tokens: list[int], chunk: int) -> torch.Tensor:
    """All-position logits, reading the prompt ``chunk`` tokens at a time through the cache."""
    model = GptOssModel(load_weights(path, dtype=torch.float32), max_positions=256)
    return sequence_logits(model, tokens, chunk=chunk)


@pytest.mark.parametrize("layout", ["hf", "original"])
@pytest.mark.parametrize("name", NAMES)
def test_logits_match(checkpoints: Checkpoints, name: str, layout: str) -> None:
    cfg = CONFIGS[name]
    tokens = prompt(40, cfg.vocab_size)  # longer than the sliding window of two configs
    with torch.no_grad():
        ref = hf_model(checkpoints(name, "hf"))(torch.tensor([tokens])).logits[0]
    for chunk in (40, 7):  # one pass, and chunked prefill through the ring
        ours = our_logits(checkpoints(name, layout), tokens, chunk)
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_greedy_32_tokens_match(checkpoints: Checkpoints, name: str) -> None:
    path = checkpoints(name, "hf")
    tokens = prompt(21, CONFIGS[name].vocab_size, seed=1)
    with torch.no_grad():
        ref = (
            hf_model(path)
            .generate(
                torch.tensor([tokens]), max_new_tokens=32, do_sample=False, min_new_tokens=32
            )[0, len(tokens) :]
            .tolist()
        )
    [(ours, finished)] = run_core(make_core(path), [greedy(tokens, max_tokens=32)])
    assert ours == ref
    assert finished.completion_tokens == 32


@pytest.mark.parametrize("name", ["tiny", "mha_window5"])
def test_batched_decode_equals_one_at_a_time(checkpoints: Checkpoints, name: str) -> None:
    path, vocab = checkpoints(name, "original"), CONFIGS[name].vocab_size
    requests = [greedy(prompt(n, vocab, seed=n), max_tokens=12) for n in (3, 30, 17, 9, 25)]
    batched = run_core(make_core(path, max_batch=4, prefill_chunk=16), requests)
    alone = [run_core(make_core(path, max_batch=1), [r])[0] for r in requests]
    assert [t for t, _ in batched] == [t for t, _ in alone]


@pytest.mark.parametrize("name", NAMES)
def test_prefix_reuse_equals_fresh(checkpoints: Checkpoints, name: str) -> None:
    path, vocab = checkpoints(name, "hf"), CONFIGS[name].vocab_size
    core = make_core(path)
    first = prompt(20, vocab, seed=2)
    [(completion, done)] = run_core(core, [greedy(first, max_tokens=6, conversation_id="c")])
    assert done.reused_tokens == 0
    # The next turn: the whole previous exchange plus new tokens.
    second = first + completion + prompt(11, vocab, seed=3)
    [(reused, done)] = run_core(core, [greedy(second, max_tokens=10, conversation_id="c")])
    # Every cached position is reused: the prompt and all completion tokens but the last
    # (which was sampled, never fed back).
    assert done.reused_tokens == len(first) + len(completion) - 1
    [(fresh, fresh_done)] = run_core(make_core(path), [greedy(second, max_tokens=10)])
    assert reused == fresh and fresh_done.reused_tokens == 0


def test_longest_cached_prefix_is_reused_across_conversations(checkpoints: Checkpoints) -> None:
    path, vocab = checkpoints("yarn_top1", "hf"), CONFIGS["yarn_top1"].vocab_size
    core = make_core(path)
    system = prompt(30, vocab, seed=4)
    run_core(core, [greedy(system + [1, 2], max_tokens=1), greedy(system[:10], max_tokens=1)])
    request = greedy(system + [5, 6, 7], max_tokens=8)
    [(tokens, done)] = run_core(core, [request])
    assert done.reused_tokens == len(system)  # the longer of the two cached prefixes
    assert tokens == run_core(make_core(path), [request])[0][0]


def test_window_evicted_prefix_is_recomputed(checkpoints: Checkpoints) -> None:
    # A cached sequence that ran far past the shared prefix has overwritten that part of its
    # sliding-window ring: reuse must be refused, and the answer must still be right.
    path, vocab = checkpoints("mha_window5", "hf"), CONFIGS["mha_window5"].vocab_size
    core = make_core(path, prefill_chunk=4)
    base = prompt(12, vocab, seed=5)
    run_core(core, [greedy(base + prompt(30, vocab, seed=6), max_tokens=1)])
    request = greedy(base + [3, 4], max_tokens=6)
    [(tokens, done)] = run_core(core, [request])
    assert done.reused_tokens == 0
    assert tokens == run_core(make_core(path), [request])[0][0]


def test_experts_decoded_per_step_equal_experts_kept_decoded(
    checkpoints: Checkpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small models on CPU keep their experts decoded; big ones decode the chosen experts each
    step. Both paths give the same logits."""
    import agent.engine.gptoss.model as model_module

    path = checkpoints("tiny", "original")
    tokens = prompt(24, CONFIGS["tiny"].vocab_size, seed=3)
    assert GptOssModel(load_weights(path, dtype=torch.float32), max_positions=64)._dense_experts
    kept = our_logits(path, tokens, chunk=8)
    monkeypatch.setattr(model_module, "_DENSE_EXPERTS_BYTES", 0)
    assert GptOssModel(load_weights(path, dtype=torch.float32), max_positions=64)._dense_experts is None
    per_step = our_logits(path, tokens, chunk=8)
    torch.testing.assert_close(per_step, kept, atol=1e-5, rtol=1e-5)
