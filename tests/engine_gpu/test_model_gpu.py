"""The whole model on the GPU: Triton kernels and CUDA graphs against the PyTorch path and
transformers, on small random checkpoints whose head_dim (64) takes the attention kernel."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from agent.engine.base import EngineRequest, SamplingParams  # noqa: E402
from agent.engine.gptoss import CoreOptions, EngineCore, load_weights, write_random_checkpoint  # noqa: E402
from agent.engine.gptoss.kv_cache import KVCache  # noqa: E402
from agent.engine.gptoss.model import GptOssModel  # noqa: E402
from agent.engine.gptoss.random_checkpoint import preset  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("cuda")]

SMALL = preset(
    "custom", num_hidden_layers=4, num_experts=16, experts_per_token=4, vocab_size=1000,
    hidden_size=256, intermediate_size=128, head_dim=64, num_attention_heads=8,
    num_key_value_heads=2, sliding_window=16, initial_context_length=64,
)  # fmt: skip


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("small"), SMALL, layout="hf", seed=3)


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref.double()).norm() / ref.double().norm())


def step_logits(path: Path, tokens: list[int], dtype: torch.dtype, prefill: int) -> torch.Tensor:
    """Prefill ``prefill`` tokens in one chunk, then decode the rest one at a time: ``[N, V]``."""
    weights = load_weights(path, device="cuda", dtype=dtype)
    model = GptOssModel(weights, max_positions=256)
    cache = KVCache(weights.config, num_blocks=32, block_size=16, num_rings=1, prefill_chunk=prefill,
                    device=torch.device("cuda"), dtype=dtype)  # fmt: skip
    seq = cache.allocate()
    cache.reserve(seq, len(tokens))
    meta = cache.build_meta([seq], [0], [prefill])
    out = [model.forward(torch.tensor([tokens[:prefill]], device="cuda"), meta, cache)[0]]
    for pos in range(prefill, len(tokens)):  # model.decode: a CUDA graph unless turned off
        out.append(model.decode([tokens[pos]], [seq], cache))
    return torch.cat(out)


def prompt(n: int, seed: int = 0) -> list[int]:
    return torch.randint(0, SMALL.vocab_size, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("graphs", ["0", "1"])
def test_kernels_as_accurate_as_pytorch_path(small_ckpt: Path, monkeypatch: pytest.MonkeyPatch, graphs: str) -> None:
    """bf16 kernels vs a float32 reference: no worse than the bf16 PyTorch path's own error.

    (The two bf16 paths round at different places, so comparing them with each other measures
    the PyTorch path's rounding as much as the kernels'.)
    """
    tokens = prompt(48)  # 40 decode steps: past the 16-token sliding window
    monkeypatch.setenv("OSS_AGENT_CUDA_GRAPHS", graphs)
    monkeypatch.setenv("OSS_AGENT_KERNELS", "0")
    ref = step_logits(small_ckpt, tokens, torch.float32, prefill=8)
    slow = step_logits(small_ckpt, tokens, torch.bfloat16, prefill=8)
    monkeypatch.setenv("OSS_AGENT_KERNELS", "1")
    fast = step_logits(small_ckpt, tokens, torch.bfloat16, prefill=8)
    assert torch.isfinite(fast).all()
    e_fast, e_slow = rel_err(fast, ref), rel_err(slow, ref)
    assert e_fast <= 1.25 * e_slow + 5e-3, f"kernels {e_fast:.2e}, pytorch path {e_slow:.2e}"


def test_kernels_match_transformers(small_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 everywhere ("ieee" dots in the kernels): the kernels add no error beyond the
    GPU's own dense path (cuBLAS may run float32 as TF32 where the image allows it)."""
    transformers = pytest.importorskip("transformers")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    tokens = prompt(40, seed=1)
    monkeypatch.setenv("OSS_AGENT_KERNELS", "1")
    fast = step_logits(small_ckpt, tokens, torch.float32, prefill=8).cpu()
    monkeypatch.setenv("OSS_AGENT_KERNELS", "0")
    slow = step_logits(small_ckpt, tokens, torch.float32, prefill=8).cpu()
    hf = transformers.GptOssForCausalLM.from_pretrained(
        small_ckpt, quantization_config=transformers.Mxfp4Config(dequantize=True),
        dtype=torch.float32, attn_implementation="eager",
    ).eval()  # fmt: skip
    with torch.inference_mode():
        ref = hf(torch.tensor([tokens])).logits[0].float()
    e_fast, e_slow = rel_err(fast, ref), rel_err(slow, ref)
    assert e_fast <= 1.5 * e_slow + 2e-3, f"kernels {e_fast:.2e}, pytorch path {e_slow:.2e}"


def test_engine_core_graphs_agree_with_eager(small_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Continuous batching through EngineCore: graph replays give the eager kernels' tokens."""

    def run() -> list[list[int]]:
        opts = CoreOptions(max_batch=3, max_context=128, prefill_chunk=16)
        core = EngineCore.from_checkpoint(small_ckpt, device="cuda", dtype=torch.float32, options=opts)
        ids = [
            core.add(EngineRequest(prompt(5 + 7 * i, seed=i), sampling=SamplingParams(temperature=0, max_tokens=24)))
            for i in range(3)
        ]
        out: dict[int, list[int]] = {i: [] for i in ids}
        while core.has_work:
            for rid, event in core.step():
                out[rid].extend(getattr(event, "token_ids", ()))
        return [out[i] for i in ids]

    monkeypatch.setenv("OSS_AGENT_CUDA_GRAPHS", "1")
    graphed = run()
    monkeypatch.setenv("OSS_AGENT_CUDA_GRAPHS", "0")
    eager = run()
    assert all(len(t) == 24 for t in graphed)
    # float32 model; the batch padded to its bucket only changes cuBLAS shapes: allow one
    # near-tie to diverge late rather than demanding bit equality.
    agree = sum(a == b for g, e in zip(graphed, eager, strict=True) for a, b in zip(g, e, strict=True))
    assert agree >= 0.9 * 72


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_run_ahead_gives_the_synchronous_tokens(small_ckpt: Path, dtype: torch.dtype) -> None:
    """EngineCore launching each decode step before reading the last one's tokens (fed to the
    graph on the GPU) gives bit for bit the tokens of synchronous steps: greedy and seeded
    sampling, batches shrinking from 3 to 1 as requests reach their limits."""

    def run(run_ahead: bool) -> tuple[list[list[int]], EngineCore]:
        opts = CoreOptions(max_batch=3, max_context=128, prefill_chunk=16, run_ahead=run_ahead)
        core = EngineCore.from_checkpoint(small_ckpt, device="cuda", dtype=dtype, options=opts)
        sampling = [SamplingParams(temperature=0, max_tokens=24), SamplingParams(temperature=0.8, max_tokens=20, seed=5),
                    SamplingParams(temperature=1.0, top_p=0.9, max_tokens=12, seed=6)]  # fmt: skip
        ids = [core.add(EngineRequest(prompt(5 + 7 * i, seed=i), sampling=p)) for i, p in enumerate(sampling)]
        out: dict[int, list[int]] = {i: [] for i in ids}
        while core.has_work:
            for rid, event in core.step():
                out[rid].extend(getattr(event, "token_ids", ()))
        return [out[i] for i in ids], core

    (sync, _), (ahead, core) = run(False), run(True)
    assert [len(t) for t in ahead] == [24, 20, 12]
    assert ahead == sync
    assert sorted(core.model._decode_graphs.graphs) == [1, 2, 4]  # type: ignore[attr-defined]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_greedy_steps_choose_their_tokens_in_the_graph(small_ckpt: Path, dtype: torch.dtype) -> None:
    """Greedy batches with run-ahead: each step's graph chooses its tokens (the unembedding's
    atomics) and the next graph reads them where they were written. The tokens are bit for bit
    those of synchronous steps (the logits' argmax on the host side), through buckets 4, 2 and 1
    (the split-K dot and the one-row GEMV) as requests reach their limits, and the steps did go
    through the graphs' choice, alternating the bucket's two graphs."""

    def run(run_ahead: bool) -> tuple[list[list[int]], EngineCore, list[object]]:
        opts = CoreOptions(max_batch=3, max_context=128, prefill_chunk=16, run_ahead=run_ahead)
        core = EngineCore.from_checkpoint(small_ckpt, device="cuda", dtype=dtype, options=opts)
        chosen: list[object] = []
        decode_greedy = core.model.decode_greedy

        def counted(*args: object) -> object:
            chosen.append(decode_greedy(*args))  # type: ignore[arg-type]
            return chosen[-1]

        core.model.decode_greedy = counted  # type: ignore[method-assign]
        ids = [
            core.add(EngineRequest(prompt(5 + 7 * i, seed=i), sampling=SamplingParams(temperature=0, max_tokens=n)))
            for i, n in enumerate((24, 18, 9))
        ]
        out: dict[int, list[int]] = {i: [] for i in ids}
        while core.has_work:
            for rid, event in core.step():
                out[rid].extend(getattr(event, "token_ids", ()))
        return [out[i] for i in ids], core, chosen

    (sync, _, none), (ahead, core, chosen) = run(False), run(True)
    assert [len(t) for t in ahead] == [24, 18, 9]
    assert ahead == sync
    assert none == [] and len(chosen) > 20 and all(c is not None for c in chosen)
    graphs = core.model._decode_graphs.graphs  # type: ignore[attr-defined]
    assert sorted(graphs) == [1, 2, 4] and all(len(pair) == 2 for pair in graphs.values())


def test_no_greedy_step_where_the_unembedding_cannot_choose(small_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the unembedding left to cuBLAS (as past 16 rows), the graph chooses no tokens:
    ``decode_greedy`` declines before running anything, and ``decode`` still replays."""
    from agent.engine.gptoss.kernels import linear

    monkeypatch.setattr(linear, "TUNING", linear.LinearTuning(logits=False))
    weights = load_weights(small_ckpt, device="cuda", dtype=torch.bfloat16)
    model = GptOssModel(weights, max_positions=64)
    cache = KVCache(weights.config, num_blocks=8, block_size=16, num_rings=1, prefill_chunk=16,
                    device=torch.device("cuda"), dtype=torch.bfloat16)  # fmt: skip
    seq = cache.allocate()
    cache.reserve(seq, 32)
    assert model.decode_greedy([3], [seq], cache) is None and seq.length == 0
    assert model.decode([3], [seq], cache).shape == (1, SMALL.vocab_size) and seq.length == 1
    assert [g.chooses for g in model._decode_graphs.graphs[1]] == [False]  # type: ignore[attr-defined]


def test_a_step_fed_on_the_gpu_while_the_last_one_replays(small_ckpt: Path) -> None:
    """Two decode steps queued back to back, the second fed the first one's argmax on the GPU:
    with the first graph's replay still queued, the second step stages into a second graph of
    the bucket. Logits bit for bit those of steps taken one at a time with host tokens."""
    weights = load_weights(small_ckpt, device="cuda", dtype=torch.bfloat16)
    tokens = prompt(9, seed=4)

    def run(queued: bool) -> list[torch.Tensor]:
        model = GptOssModel(weights, max_positions=64)
        cache = KVCache(weights.config, num_blocks=8, block_size=16, num_rings=1, prefill_chunk=16,
                        device=torch.device("cuda"), dtype=torch.bfloat16)  # fmt: skip
        seq = cache.allocate()
        cache.reserve(seq, 32)
        meta = cache.build_meta([seq], [0], [len(tokens)])
        model.forward(torch.tensor([tokens], device="cuda"), meta, cache)
        model.decode([tokens[-1]], [seq], cache)  # captures the bucket's first graph
        torch.cuda.synchronize()
        out = []
        if queued:
            torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU time: the next replay waits behind it
            out.append(model.decode([5], [seq], cache))
            out.append(model.decode(out[-1].argmax(-1), [seq], cache))
            assert len(model._decode_graphs.graphs[1]) == 2  # type: ignore[attr-defined]
        else:
            out.append(model.decode([5], [seq], cache))
            out.append(model.decode([int(out[-1].argmax())], [seq], cache))
        return out

    for got, want in zip(run(True), run(False), strict=True):
        assert torch.equal(got, want)


def test_dependent_launches_change_no_result(small_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels that start before the previous one has finished (PDL), some reading their weights
    before they wait, must change no bit: every kernel waits for its inputs. Graph replays and
    eager steps against plain launches. (Before sm_90 there is no PDL: both runs launch plainly.)"""
    from agent.engine.gptoss.kernels import pdl

    hopper = torch.cuda.get_device_capability() >= (9, 0)
    assert pdl.launch(torch.device("cuda"), early=True) == (
        {"PDL": True, "launch_pdl": True, "EARLY": True} if hopper else {"PDL": False, "EARLY": False}
    )
    tokens = prompt(48, seed=2)
    out = {}
    for graphs in ("0", "1"):
        monkeypatch.setenv("OSS_AGENT_CUDA_GRAPHS", graphs)
        for on in (True, False):
            monkeypatch.setattr(pdl, "TUNING", pdl.PdlTuning(enabled=on, early=True))
            out[graphs, on] = step_logits(small_ckpt, tokens, torch.bfloat16, prefill=8)
    for graphs in ("0", "1"):
        assert torch.equal(out[graphs, True], out[graphs, False]), f"graphs={graphs}"
