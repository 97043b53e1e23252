"""The Triton kernels against float64 references and against the PyTorch path, on the GPU.

Error bounds (relative Frobenius error ``|out - ref| / |ref|``), from where rounding happens:
- MoE GEMV (decode): bf16 activations and a bf16 hidden vector, float32 sums: < 1e-2;
- MoE grouped GEMM (prefill / large batches): bf16 tensor-core operands: < 2e-2;
- decode and prefill attention: bf16 q/k/v/probabilities on tensor cores, float32 softmax: < 2e-2;
- MoE GEMV half products (fp16): about one bf16 rounding from float64 (< 1.5 * 2 ** -9);
- whole model, kernels vs the PyTorch path, bf16 everywhere: logits < 3e-2.
Fresh random inputs each test; NaN never passes (the norm of a NaN is NaN, and NaN < x is False).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from agent.engine.gptoss import mxfp4  # noqa: E402
from agent.engine.gptoss.model import swiglu  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("cuda")]


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref.double()).norm() / ref.double().norm())


def random_experts(e: int, n: int, k: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Blocks (random bytes, read in the engine's layout as the kernels read them), scales, bias."""
    blocks = torch.randint(0, 256, (e, n, k // 32, 16), dtype=torch.uint8, generator=gen)
    exp = round(-math.log2(math.sqrt(k) * 2.6))  # values ~ 1/sqrt(fan_in), like the checkpoints
    scales = (127 + exp + torch.randint(-1, 2, (e, n, k // 32), generator=gen)).to(torch.uint8)
    bias = 0.1 * torch.randn(e, n, generator=gen)
    return blocks.cuda(), scales.cuda(), bias.to(torch.bfloat16).cuda()


def moe_reference(x, experts, weights, mlp1, mlp2, alpha=1.702, limit=7.0):
    """float64 on the GPU, expert by expert."""
    out = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    for e in experts.unique().tolist():
        tok, slot = torch.nonzero(experts == e, as_tuple=True)
        w1 = mxfp4.dequantize(mlp1[0][e], mlp1[1][e], layout="engine").double()
        h = swiglu(x[tok].double() @ w1.T + mlp1[2][e].double(), alpha, limit)
        h = h.to(x.dtype).double()  # the kernels keep the hidden vector in the activation dtype
        w2 = mxfp4.dequantize(mlp2[0][e], mlp2[1][e], layout="engine").double()
        out.index_add_(0, tok, (h @ w2.T + mlp2[2][e].double()) * weights[tok, slot, None].double())
    return out


def attention_reference(q, k_pool, v_pool, read, kpos, qpos, sinks, window):  # type: ignore[no-untyped-def]
    """The PyTorch path's attention (sinks, causal + window masks) in float64: ``[B, S, Hq, D]``."""
    b, s, hq, d = q.shape
    hkv = k_pool.shape[1]
    keys, values = k_pool[read].double(), v_pool[read].double()
    scores = torch.einsum("bsgqd,blgd->bgqsl", q.double().view(b, s, hkv, hq // hkv, d), keys) / math.sqrt(d)
    allowed = (kpos[:, None, :] >= 0) & (kpos[:, None, :] <= qpos[:, :, None])
    if window is not None:
        allowed &= qpos[:, :, None] - kpos[:, None, :] < window
    scores = scores.masked_fill(~allowed[:, None, None], float("-inf"))
    sink = sinks.double().view(1, hkv, hq // hkv, 1, 1).expand(b, -1, -1, s, 1)
    probs = torch.softmax(torch.cat((scores, sink), -1), -1)[..., :-1]
    return torch.einsum("bgqsl,blgd->bsgqd", probs, values).reshape(b, s, hq, d)


@pytest.mark.parametrize(
    ("tokens", "num_experts", "hidden", "inter", "k"),
    [(1, 32, 2880, 2880, 4), (8, 32, 2880, 2880, 4), (5, 8, 256, 96, 2), (64, 32, 512, 256, 4),
     (700, 32, 2880, 2880, 4), (33, 128, 512, 512, 4)],
)  # fmt: skip
def test_moe_matches_float64(tokens: int, num_experts: int, hidden: int, inter: int, k: int) -> None:
    from agent.engine.gptoss.kernels.moe import TUNING, moe

    gen = torch.Generator().manual_seed(tokens * 1000 + hidden)
    mlp1 = random_experts(num_experts, 2 * inter, hidden, gen)
    mlp2 = random_experts(num_experts, hidden, inter, gen)
    x = torch.randn(tokens, hidden, generator=gen).to(torch.bfloat16).cuda()
    experts = torch.stack([torch.randperm(num_experts, generator=gen)[:k] for _ in range(tokens)])
    experts = experts.to(torch.int32).cuda()
    weights = torch.softmax(torch.randn(tokens, k, generator=gen), -1).cuda()
    got = moe(x, experts, weights, mlp1, mlp2, alpha=1.702, limit=7.0)
    ref = moe_reference(x, experts, weights, mlp1, mlp2)
    bound = 1e-2 if tokens * k <= TUNING.gemv_max_pairs else 2e-2
    assert got.shape == x.shape and got.dtype == x.dtype
    assert rel_err(got, ref) < bound


@pytest.mark.parametrize("window", [None, 128])
@pytest.mark.parametrize("lengths", [[1], [121], [0, 3, 121], [300], [0, 5, 4097, 64], [20000]])
def test_decode_attention_matches_float64(lengths: list[int], window: int | None) -> None:
    from agent.engine.gptoss.kernels.attention import decode_attention

    gen = torch.Generator().manual_seed(sum(lengths) + (window or 0))
    b, hq, hkv, d = len(lengths), 64, 8, 64
    slots = max(lengths) * b + 1
    k_pool = torch.randn(slots, hkv, d, generator=gen).to(torch.bfloat16).cuda()
    v_pool = torch.randn(slots, hkv, d, generator=gen).to(torch.bfloat16).cuda()
    width = max(max(lengths), 1) + 7  # padded columns must be ignored
    read = torch.zeros(b, width, dtype=torch.long)
    kpos = torch.full((b, width), -1, dtype=torch.long)
    for i, n in enumerate(lengths):
        read[i, :n] = torch.randperm(slots - 1, generator=gen)[:n] + 1
        kpos[i, :n] = torch.arange(n)
    qpos = torch.tensor([max(n - 1, 0) for n in lengths])
    q = torch.randn(b, hq, d, generator=gen).to(torch.bfloat16).cuda()
    sinks = torch.randn(hq, generator=gen).cuda()
    read, kpos, qpos = read.cuda(), kpos.cuda(), qpos.cuda()
    got = decode_attention(q, k_pool, v_pool, read, kpos, qpos, sinks, window)
    ref = attention_reference(q[:, None], k_pool, v_pool, read, kpos, qpos[:, None], sinks, window)[:, 0]
    assert torch.isfinite(got).all()
    for i, n in enumerate(lengths):
        if n == 0:  # only the sink: attends to nothing
            assert got[i].abs().max() == 0
        else:
            assert rel_err(got[i], ref[i]) < 2e-2


@pytest.mark.parametrize(("length", "window"), [(100, 128), (300, None), (3000, None)])
def test_decode_attention_waits_for_the_newest_key(length: int, window: int | None) -> None:
    """Decode attention reads the keys earlier steps wrote before its PDL wait, and the newest
    column only after: written by the qkv epilogue launched just before it, over NaN."""
    from agent.engine.gptoss.kernels.attention import decode_attention
    from agent.engine.gptoss.kernels.fused import qkv_rope_store

    gen = torch.Generator().manual_seed(length)
    hq, hkv, d = 64, 8, 64
    k_pool = torch.randn(length + 1, hkv, d, generator=gen).to(torch.bfloat16).cuda()
    v_pool = torch.randn(length + 1, hkv, d, generator=gen).to(torch.bfloat16).cuda()
    newest = length  # the last slot: the newest key's
    read = torch.arange(1, length + 1)[None].cuda()
    kpos = torch.arange(length)[None].cuda()
    qpos = torch.tensor([length - 1]).cuda()
    qkv = torch.randn(1, 2, (hq + 2 * hkv) * d, generator=gen).cuda() * 4
    table = torch.randn(1, 1, 2, d // 2, generator=gen).to(torch.bfloat16).cuda()
    sinks = torch.randn(hq, generator=gen).cuda()
    for _ in range(3):  # a hazard shows only when the two launches overlap: give it chances
        k_pool[newest] = v_pool[newest] = float("nan")
        q = qkv_rope_store(qkv, None, table[:, :, None, 0], table[:, :, None, 1], torch.tensor([newest]).cuda(),
                           k_pool, v_pool, hq, torch.bfloat16)  # fmt: skip
        got = decode_attention(q, k_pool, v_pool, read, kpos, qpos, sinks, window)
        assert torch.isfinite(got).all()
        ref = attention_reference(q[:, None], k_pool, v_pool, read, kpos, qpos[:, None], sinks, window)[:, 0]
        assert rel_err(got, ref) < 2e-2


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize(("tokens", "num_experts", "k"), [(1, 32, 4), (8, 128, 4), (3, 8, 2)])
def test_router_kernel_matches_topk_softmax(tokens: int, num_experts: int, k: int, half: bool) -> None:
    from agent.engine.gptoss.kernels.moe_gemv import X_SCALE, route

    gen = torch.Generator().manual_seed(tokens + num_experts)
    logits = torch.randn(tokens, num_experts, generator=gen).to(torch.bfloat16).cuda()
    # Tokens of very different sizes: each gets its own power-of-two scale for half products.
    size = 2.0 ** torch.arange(-6, 3 * tokens - 6, 3, dtype=torch.float32)[:tokens, None]
    x = (torch.randn(tokens, 2880, generator=gen) * size).to(torch.bfloat16).cuda()
    experts, weights, xn = route(logits, x, k, half=half)
    top_logits, _ = torch.topk(logits, k, dim=-1)
    # Compare chosen logits, not ids: bf16 logits can tie, and any of the tied experts is right.
    assert torch.equal(logits.gather(1, experts.long()), top_logits)
    assert torch.allclose(weights, torch.softmax(top_logits.float(), -1), atol=1e-6)
    if not half:
        natural = (xn.values / X_SCALE).view(tokens, 90, 8, 4).transpose(2, 3).reshape(tokens, 2880)
        assert xn.exps is None and torch.equal(natural, x.float())
        return
    # Pair order: word w's pairs are its values (0, 2), (4, 6), (1, 3), (5, 7); pair p of the 4
    # words of a group is stored as p * 4 + word.
    i = torch.arange(2880)
    w, q = i // 8, i % 8
    pos = ((w // 4) * 16 + (2 * (q % 2) + q // 4) * 4 + w % 4) * 2 + (q // 2) % 2
    natural = xn.values[:, pos.cuda()].float()
    e = xn.exps.long()
    top = x.float().abs().amax(1)
    assert torch.equal(e, torch.floor(torch.log2(top)).long()), "e = floor(log2(max |x|))"
    assert torch.equal(natural, x.float() * torch.exp2(14.0 - e.float())[:, None])  # bf16 fits fp16 exactly
    assert (natural.abs().amax(1) < 2**15).all()


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize(("tokens", "num_experts", "k"), [(1, 32, 4), (8, 128, 4), (3, 8, 2)])
def test_gate_route_is_the_router_linear_then_route(tokens: int, num_experts: int, k: int, half: bool) -> None:
    """The router's linear layer inside the router kernel picks what the linear layer (float64,
    rounded to bf16) then ``route`` pick: chosen logits within one bf16 rounding of the top-k
    (the kernel sums in another order), ``x`` converted bit for bit; and the per-token counters
    that find each token's last program are back at zero, so calls repeat exactly."""
    from agent.engine.gptoss.kernels.moe_gemv import _counters, gate_route, route

    gen = torch.Generator().manual_seed(3 * tokens + num_experts)
    x = (torch.randn(tokens, 2880, generator=gen) * 2.0 ** torch.arange(tokens)[:, None]).to(torch.bfloat16).cuda()
    w = (torch.randn(num_experts, 2880, generator=gen) / 50).to(torch.bfloat16).cuda()
    b = torch.randn(num_experts, generator=gen).to(torch.bfloat16).cuda()
    ref = (x.double() @ w.double().T + b.double()).to(torch.bfloat16)
    _, _, want_x = route(ref, x, k, half=half)
    runs = [gate_route(x, w, b, k, half=half) for _ in range(3)]
    experts, weights, xn = runs[0]
    for e, wt, xv in runs[1:]:
        assert torch.equal(e, experts) and torch.equal(wt, weights) and torch.equal(xv.values, xn.values)
    assert int(_counters(w, tokens).abs().sum()) == 0
    top = torch.topk(ref.float(), k, dim=-1).values
    chosen = ref.float().gather(1, experts.long()).sort(-1, descending=True).values
    assert ((chosen - top).abs() <= top.abs() * 2**-7 + 1e-6).all()
    # The weights are the softmax of the chosen logits (each within a bf16 rounding of these).
    assert torch.allclose(weights, torch.softmax(ref.float().gather(1, experts.long()), -1), atol=2e-2)
    assert torch.equal(xn.values, want_x.values)
    assert (xn.exps is None) == (want_x.exps is None)
    if half:
        assert torch.equal(xn.exps, want_x.exps)


@pytest.mark.parametrize(("ahead", "stages"), [(1, 0), (2, 0), (2, 3)])
@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize(("tokens", "hidden", "inter"), [(1, 2880, 2880), (3, 512, 1024), (2, 160, 320)])
def test_moe_sliced_partials_sum_to_float64(
    tokens: int, hidden: int, inter: int, half: bool, ahead: int, stages: int
) -> None:
    """mlp2 cut along K (the decode layer's partial sums): the slices sum to the product, with
    float32 or half (fp16) products alike, and with weight loads one or two steps ahead or in
    the compiler's pipeline (their masks stop at the slice's end). Half products without the
    pipeline read windows that stay inside K: at 160 x 320 a window overlaps the step before it
    (mlp1's 5 groups and mlp2's last 2-group slice), K has fewer groups than the launch shape's
    step (block_g shrinks to fit) and mlp2's 160 rows end inside a 128-row tile."""
    from agent.engine.gptoss.kernels import moe_gemv
    from agent.engine.gptoss.kernels.moe_gemv import GemvShape

    gen = torch.Generator().manual_seed(7 + tokens)
    mlp1 = random_experts(32, 2 * inter, hidden, gen)
    mlp2 = random_experts(32, hidden, inter, gen)
    x = torch.randn(tokens, hidden, generator=gen).to(torch.bfloat16).cuda()
    logits = torch.randn(tokens, 32, generator=gen).to(torch.bfloat16).cuda()
    experts, weights, xn = moe_gemv.route(logits, x, 4, half=half)
    got = moe_gemv.moe_gemv(
        xn, experts, weights, mlp1, mlp2, dtype=torch.bfloat16, alpha=1.702, limit=7.0,
        shape1=GemvShape(64, 8, 2, ahead, stages), shape2=GemvShape(128, 4, 4, ahead, stages), programs2=100_000,
        max_slices2=8, partials=True,
    )  # fmt: skip
    assert got.shape[1] > 4 * 2, "mlp2 was not sliced"
    ref = moe_reference(x, experts, weights, mlp1, mlp2)
    assert rel_err(got.sum(1), ref) < 1e-2


@pytest.mark.parametrize(("pairs", "num_experts", "block_m"), [(256, 32, 16), (1024, 32, 32), (65, 128, 16), (256, 32, 128)])
def test_expert_tiles_kernel_equals_the_pytorch_ops(pairs: int, num_experts: int, block_m: int) -> None:
    """One launch sorts the pairs by expert (stably) and cuts the tiles exactly as the PyTorch
    ops do: random experts, all pairs on one expert, and a few experts only."""
    from agent.engine.gptoss.kernels.moe import _tiles, expert_tiles

    gen = torch.Generator().manual_seed(pairs + num_experts)
    for experts in (
        torch.randint(0, num_experts, (pairs,), generator=gen),
        torch.full((pairs,), num_experts - 1),
        torch.randint(0, 3, (pairs,), generator=gen),
    ):
        flat = experts.to(torch.int32).cuda()
        got, want = expert_tiles(flat, num_experts, block_m), _tiles(flat, num_experts, block_m)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize(("tokens", "delta_rows"), [(1, 0), (1, 5), (3, 8), (8, 2)])
def test_router_with_the_norm_folded_in_is_add_rms_norm_then_gate_route(
    tokens: int, delta_rows: int, half: bool
) -> None:
    """The residual add and RMSNorm inside the router's launch give, bit for bit, what the norm
    kernel and then the router give: ``x + delta``, experts, weights, the converted input; for
    a plain delta (0 rows: ``[T, H]`` bf16) and for float32 partial rows, 8 of them taking the
    16-warp launch."""
    from agent.engine.gptoss.kernels.fused import add_rms_norm
    from agent.engine.gptoss.kernels.moe_gemv import ResidualNorm, add_norm_gate_route, gate_route

    gen = torch.Generator().manual_seed(11 * tokens + delta_rows)
    x = torch.randn(tokens, 2880, generator=gen).to(torch.bfloat16).cuda()
    shape = (tokens, delta_rows, 2880) if delta_rows else (tokens, 2880)
    delta = torch.randn(*shape, generator=gen).to(torch.float32 if delta_rows else torch.bfloat16).cuda()
    scale = (1 + torch.randn(2880, generator=gen) / 4).to(torch.bfloat16).cuda()
    w = (torch.randn(32, 2880, generator=gen) / 50).to(torch.bfloat16).cuda()
    b = torch.randn(32, generator=gen).to(torch.bfloat16).cuda()
    want_x, h = add_rms_norm(x, delta, scale, 1e-5)
    want = gate_route(h, w, b, 4, half=half)
    for _ in range(2):  # the counters are back at zero: a second call repeats the first
        got_x, *got = add_norm_gate_route(x, ResidualNorm(delta, scale, 1e-5), w, b, 4, half=half)
        assert torch.equal(got_x, want_x)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert torch.equal(got[2].values, want[2].values)
        assert (got[2].exps is None) == (want[2].exps is None)
        if half:
            assert torch.equal(got[2].exps, want[2].exps)


@pytest.mark.parametrize("tokens", [1, 3])
def test_gemv_programs_pick_the_routers_experts(tokens: int) -> None:
    """With no last router program to pick the experts, each GEMV program picks its pair's from
    the logits: the same experts and weights (which mlp1 writes down) and the same outputs, bit
    for bit, as when the router picks them."""
    from agent.engine.gptoss.kernels import moe_gemv
    from agent.engine.gptoss.kernels.moe_gemv import GemvShape, ResidualNorm, add_norm_gate_route

    gen = torch.Generator().manual_seed(19 + tokens)
    x = torch.randn(tokens, 2880, generator=gen).to(torch.bfloat16).cuda()
    residual = ResidualNorm(torch.randn(tokens, 5, 2880, generator=gen).cuda(),
                            (1 + torch.randn(2880, generator=gen) / 4).to(torch.bfloat16).cuda(), 1e-5)  # fmt: skip
    w = (torch.randn(32, 2880, generator=gen) / 50).to(torch.bfloat16).cuda()
    b = torch.randn(32, generator=gen).to(torch.bfloat16).cuda()
    mlp1, mlp2 = random_experts(32, 2 * 2880, 2880, gen), random_experts(32, 2880, 2880, gen)
    launch = {"dtype": torch.bfloat16, "alpha": 1.702, "limit": 7.0, "shape1": GemvShape(32, 8, 2),
              "shape2": GemvShape(32, 8, 2), "programs2": 1000, "max_slices2": 2, "partials": True}  # fmt: skip
    _, experts, weights, xn, _ = add_norm_gate_route(x, residual, w, b, 4, half=True)
    want = moe_gemv.moe_gemv(xn, experts, weights, mlp1, mlp2, **launch)
    _, got_e, got_w, got_xn, logits = add_norm_gate_route(x, residual, w, b, 4, half=True, pick=False)
    assert torch.equal(got_xn.values, xn.values)
    got = moe_gemv.moe_gemv(got_xn, got_e, got_w, mlp1, mlp2, logits=logits, **launch)
    assert torch.equal(got_e, experts) and torch.equal(got_w, weights)
    assert torch.equal(got, want)


def test_gate_topk_is_gate_route_without_the_conversion() -> None:
    from agent.engine.gptoss.kernels.moe_gemv import gate_route, gate_topk

    gen = torch.Generator().manual_seed(9)
    x = torch.randn(64, 2880, generator=gen).to(torch.bfloat16).cuda()
    w = (torch.randn(32, 2880, generator=gen) / 50).to(torch.bfloat16).cuda()
    b = torch.randn(32, generator=gen).to(torch.bfloat16).cuda()
    experts, weights, _ = gate_route(x, w, b, 4, half=True)
    got_e, got_w = gate_topk(x, w, b, 4)
    assert torch.equal(got_e, experts) and torch.equal(got_w, weights)


def test_gemv_shape_rejects_what_the_kernel_cannot_run() -> None:
    """Three steps ahead would silently read the wrong weights (the kernel has two buffers)."""
    from agent.engine.gptoss.kernels.moe_gemv import GemvShape

    assert GemvShape(32, 16, 2, 2, 3).stages == 3
    for bad in ((32, 8, 2, 3), (32, 8, 2, 0), (32, 8, 2, 2, -1)):
        with pytest.raises(ValueError, match="ahead must be 1 or 2"):
            GemvShape(*bad)


@pytest.mark.parametrize(
    ("rows", "n", "k"), [(1, 5120, 2880), (1, 2880, 4096), (1, 200, 96), (1, 37, 1000), (8, 2880, 4096), (16, 64, 512),
                         (3, 200, 96)],
)  # fmt: skip
def test_split_k_linear_matches_float64(rows: int, n: int, k: int) -> None:
    """bf16 operands, float32 sums: the only error is float32 rounding (bound 1e-4), for the
    split-K dot (several rows, or one with the GEMV turned off) and the one-row FMA GEMV, whose
    last form here cuts K into 64-column slices so that the slice count shows it ran. The odd
    shapes leave partial row tiles and partial K blocks."""
    from agent.engine.gptoss.kernels.linear import LinearTuning, linear_partials

    gen = torch.Generator().manual_seed(rows * n)
    x = torch.randn(rows, k, generator=gen).to(torch.bfloat16).cuda()
    w = (torch.randn(n, k, generator=gen) / math.sqrt(k)).to(torch.bfloat16).cuda()
    bias = torch.randn(n, generator=gen).to(torch.bfloat16).cuda()
    ref = x.double() @ w.double().T + bias.double()
    tunings = [LinearTuning(), LinearTuning(gemv_rows=0)]
    if rows == 1:
        tunings.append(LinearTuning(gemv_block_k=64, gemv_programs_per_sm=10_000))
    for tuning in tunings:
        got = linear_partials(x, w, bias, tuning)
        assert got.dtype == torch.float32 and got.shape[0] == rows and got.shape[2] == n
        assert rel_err(got.sum(1), ref) < 1e-4
        assert rel_err(linear_partials(x, w, None, tuning).sum(1), ref - bias.double()) < 1e-4
    if rows == 1:
        assert got.shape[1] == -(-k // 64)


def test_embedding_norm_and_rope_rows_in_one_launch() -> None:
    """The forward pass's first launch gives what the gather, the RMSNorm kernel and the RoPE
    table's gather and cast give, bit for bit; a padded position (-1) takes position 0's row."""
    from agent.engine.gptoss.kernels.fused import embed_rms_norm, rms_norm

    gen = torch.Generator().manual_seed(5)
    emb = torch.randn(1000, 2880, generator=gen).to(torch.bfloat16).cuda()
    scale = (1 + 0.1 * torch.randn(2880, generator=gen)).to(torch.bfloat16).cuda()
    table = torch.randn(300, 2, 32, generator=gen).cuda()
    tokens = torch.tensor([[3, 999, 0], [17, 5, 5]]).cuda()
    positions = torch.tensor([[7, 8, 299], [0, 1, -1]]).cuda()
    x, h, rope = embed_rms_norm(tokens, positions, emb, scale, 1e-5, table)
    assert torch.equal(x, emb[tokens])
    assert torch.equal(h, rms_norm(emb[tokens], scale, 1e-5))
    assert rope.dtype == torch.bfloat16 and torch.equal(rope, table[positions.clamp_min(0)].to(torch.bfloat16))


@pytest.mark.parametrize("full_width", [48, 3000])
def test_step_metadata_kernel_equals_decode_meta(full_width: int) -> None:
    """One launch gives ``KVCache.decode_meta``'s tensors bit for bit, and the live key columns
    ``live_lengths`` counts: rows at position 0, inside and past the sliding window (the ring
    wraps), at the last column, and a padded row (-1). Table entries past a row's blocks hold
    junk ids, as the graph's buffer may; 3000 columns take several programs a row. The same
    launch resolves the step's tokens: rows staged -1 take the fed (sampled) token, rows staged
    -2 - s the greedy choice packed in row s of the choices, and the graph's own row of choices
    is reset for its atomics."""
    from agent.engine.gptoss.kernels.attention import live_lengths
    from agent.engine.gptoss.kernels.step_meta import TokenFeed, decode_meta
    from agent.engine.gptoss.kv_cache import KVCache
    from agent.engine.gptoss.random_checkpoint import preset
    from agent.engine.gptoss.sampling import NO_CHOICE, pack_greedy

    cfg = preset("custom", sliding_window=8)
    cache = KVCache(cfg, num_blocks=1024, block_size=4, num_rings=6, prefill_chunk=6,
                    device=torch.device("cuda"), dtype=torch.float32)  # fmt: skip
    gen = torch.Generator().manual_seed(full_width)
    positions = torch.tensor([0, 5, 7, 8, 23, full_width - 1, -1])
    table_width = -(-full_width // 4)
    table = torch.randint(0, 1024, (len(positions), table_width), generator=gen)
    rings = torch.tensor([3, 0, 5, 1, 2, 4, 0])
    args = (table.cuda(), rings.cuda(), positions.cuda(), full_width)
    staged = torch.tensor([4, -1, 0, -2, 9, -3, -2]).cuda()
    logits = torch.randn(2, 7, 900, generator=gen)
    chosen = torch.stack([pack_greedy(logits[0]), pack_greedy(logits[1])]).cuda()
    picks = logits.argmax(-1).tolist()
    feed = TokenFeed(staged, torch.tensor([50, 51, 52, 53, 54, 55, 56]).cuda(), torch.full((7,), -9).cuda(), chosen, 1)
    want, got = cache.decode_meta(*args), decode_meta(cache, *args, feed=feed)
    assert feed.out.tolist() == [4, 51, 0, picks[0][3], 9, picks[1][5], picks[0][6]]
    assert chosen[1].tolist() == [NO_CHOICE] * 7 and torch.equal(chosen[0].cpu(), pack_greedy(logits[0]))
    assert torch.equal(got.positions, want.positions)
    for g, w in ((got.full, want.full), (got.sliding, want.sliding)):
        for name in ("write_slots", "read_slots", "key_positions"):
            assert torch.equal(getattr(g, name), getattr(w, name)), name
        assert torch.equal(g.lengths, live_lengths(w.key_positions))
    assert got.full.lengths.tolist() == [1, 6, 8, 9, 24, full_width, 0]
    assert got.sliding.lengths.tolist() == [1, 6, 8, 8, 8, 8, 0]


@pytest.mark.parametrize("rows", [1, 8, 17])
def test_unembedding_float32_logits(rows: int) -> None:
    """The unembedding hook at a vocabulary's width: float32 logits ``[B, V]`` within float32
    rounding of float64 (the matmul it replaces rounded them to bf16, ~2e-3); past 16 rows it
    declines and the model's matmul runs."""
    from agent.engine.gptoss import kernels

    gen = torch.Generator().manual_seed(rows)
    h = torch.randn(rows, 2880, generator=gen).to(torch.bfloat16).cuda()
    w = (torch.randn(50_000, 2880, generator=gen) / math.sqrt(2880)).to(torch.bfloat16).cuda()
    got = kernels.unembed(h, w)
    if rows > 16:
        assert got is None
        return
    assert got.dtype == torch.float32 and got.shape == (rows, 50_000)
    assert rel_err(got, h.double() @ w.double().T) < 1e-4


@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("negative", [False, True])
def test_unembedding_chooses_argmaxs_token(rows: int, negative: bool) -> None:
    """With a choice buffer, the unembedding's programs fold each row's greedy token into it:
    the packed value ``sampling.pack_greedy`` makes of the logits the launch wrote, so argmax's
    token, the first of tied columns (planted in different programs and in one program), also
    where every logit is negative. One row takes the GEMV, several the split-K dot; neither
    slices K then, though the one-row tuning below would."""
    from agent.engine.gptoss import kernels
    from agent.engine.gptoss.kernels.linear import LinearTuning, linear_partials
    from agent.engine.gptoss.sampling import NO_CHOICE, pack_greedy, unpack_greedy

    gen = torch.Generator().manual_seed(rows)
    h = torch.randn(rows, 2880, generator=gen)
    w = torch.randn(50_000, 2880, generator=gen) / math.sqrt(2880)
    ties = [(700 + r, 30_001 + 97 * r) for r in range(rows)]
    for r, (a, b) in enumerate(ties):
        w[a] = w[b] = w[b + 1] = h[r] / 8  # the row's largest logit, three times
    if negative:
        h, w = h.abs(), -w.abs()
    h, w = h.to(torch.bfloat16).cuda(), w.to(torch.bfloat16).cuda()
    best = torch.full((rows,), NO_CHOICE, dtype=torch.int64, device="cuda")
    logits = kernels.unembed(h, w, best)
    assert logits is not None
    assert torch.equal(best, pack_greedy(logits))
    want = logits.argmax(-1).tolist()
    assert [unpack_greedy(v) for v in best.tolist()] == want
    if not negative:
        assert want == [a for a, _ in ties]
    best.fill_(NO_CHOICE)
    parts = linear_partials(h, w, None, LinearTuning(gemv_block_k=64, gemv_programs_per_sm=10_000), best=best)
    assert parts.shape[1] == 1 and torch.equal(best, pack_greedy(parts[:, 0]))


@pytest.mark.parametrize("parts", [1, 3])
def test_qkv_epilogue_equals_rope_then_cache_write(parts: int) -> None:
    """One launch (sum partials + bias, round, RoPE, cache write) gives what the separate steps
    give: the projection rounded to bf16, then RoPE, then the cache write. v is copied bit for
    bit; a rotated value may differ by one bf16 rounding of either product (the compiler may
    fuse a product into the subtraction), so q and k are held to 2 ** -7 of the products."""
    from agent.engine.gptoss.kernels.fused import qkv_rope_store, rope

    gen = torch.Generator().manual_seed(parts)
    b, s, hq, hkv, d = 2, 3, 64, 8, 64
    width = (hq + 2 * hkv) * d
    qkv = torch.randn(b * s, parts, width, generator=gen).cuda()
    bias = torch.randn(width, generator=gen).to(torch.bfloat16).cuda()
    table = torch.randn(b, s, 2, d // 2, generator=gen).to(torch.bfloat16).cuda()
    cos, sin = table[:, :, None, 0], table[:, :, None, 1]
    slots = torch.tensor([[5, 6, 7], [9, 10, 0]]).cuda()  # 0: a padded row's scratch slot
    k_pool = torch.zeros(12, hkv, d, dtype=torch.bfloat16, device="cuda")
    v_pool = torch.zeros_like(k_pool)
    q = qkv_rope_store(qkv, bias, cos, sin, slots.flatten(), k_pool, v_pool, hq, torch.bfloat16)

    total = qkv[:, 0]
    for p in range(1, parts):
        total = total + qkv[:, p]
    full = (total + bias.float()).to(torch.bfloat16).view(b, s, width)
    q_in, k_in, v_in = torch.split(full, [hq * d, hkv * d, hkv * d], dim=-1)

    def rotated(x: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The RoPE kernel's result, and one rounding of either product as the tolerance."""
        x = x.reshape(b, s, heads, d)
        x1, x2 = x.float().chunk(2, dim=-1)
        c, sn = cos.float(), sin.float()
        tol = 2**-7 * torch.cat(((x1 * c).abs() + (x2 * sn).abs(), (x2 * c).abs() + (x1 * sn).abs()), -1)
        return rope(x, cos, sin).float(), tol + 1e-6

    live = slots.flatten() != 0
    q_ref, q_tol = rotated(q_in, hq)
    k_ref, k_tol = rotated(k_in, hkv)
    k_ref, k_tol = k_ref.reshape(-1, hkv, d)[live], k_tol.reshape(-1, hkv, d)[live]
    assert ((q.view(b, s, hq, d).float() - q_ref).abs() <= q_tol).all()
    assert ((k_pool[slots.flatten()[live]].float() - k_ref).abs() <= k_tol).all()
    v_want = torch.zeros_like(v_pool)
    v_want[slots.flatten()[live]] = v_in.reshape(-1, hkv, d)[live]
    assert torch.equal(v_pool[1:], v_want[1:])
    written = k_pool[1:].abs().sum(dim=(1, 2)).ne(0)
    assert int(written.sum()) == int(live.sum()), "keys written outside the tokens' slots"


def test_router_sums_partial_logits_like_a_linear_layer() -> None:
    """Partial sums ``[T, P, E]`` route exactly as their sum rounded to x's dtype does."""
    from agent.engine.gptoss.kernels.moe_gemv import route

    gen = torch.Generator().manual_seed(11)
    parts = torch.randn(8, 5, 32, generator=gen).cuda()
    x = torch.randn(8, 2880, generator=gen).to(torch.bfloat16).cuda()
    summed = parts[:, 0]
    for p in range(1, parts.shape[1]):  # the kernel's order, so float32 rounding agrees
        summed = summed + parts[:, p]
    summed = summed.to(torch.bfloat16)
    for half in (False, True):
        (e1, w1, x1), (e2, w2, x2) = route(parts, x, 4, half=half), route(summed, x, 4, half=half)
        assert torch.equal(e1, e2) and torch.equal(w1, w2) and torch.equal(x1.values, x2.values)


@pytest.mark.parametrize("tokens", [1, 8])
def test_half_products_as_accurate_as_float32(tokens: int) -> None:
    """The decode GEMV's fp16 products (bf16 models) and its float32 products against float64
    (hidden vector rounded to bf16 as both do): float32 products leave only float32 rounding;
    fp16 ones stay about one bf16 rounding (2 ** -9) away: hidden values whose bf16 rounding
    flips, and sums of 16 fp16 products per lane (H200: 1.7e-3 and 1.8e-3 relative at batch 1
    and 8; with 4 products per lane it was 1.1e-3 and 1.2e-3)."""
    from agent.engine.gptoss.kernels import moe_gemv
    from agent.engine.gptoss.kernels.moe_gemv import GemvShape

    gen = torch.Generator().manual_seed(20 + tokens)
    mlp1 = random_experts(32, 2 * 2880, 2880, gen)
    mlp2 = random_experts(32, 2880, 2880, gen)
    x = (3 * torch.randn(tokens, 2880, generator=gen)).to(torch.bfloat16).cuda()
    logits = torch.randn(tokens, 32, generator=gen).to(torch.bfloat16).cuda()
    errors = []
    for half in (False, True):
        experts, weights, xn = moe_gemv.route(logits, x, 4, half=half)
        got = moe_gemv.moe_gemv(
            xn, experts, weights, mlp1, mlp2, dtype=torch.bfloat16, alpha=1.702, limit=7.0,
            shape1=GemvShape(64, 8, 2), shape2=GemvShape(128, 4, 4), partials=True,
        )  # fmt: skip
        errors.append(rel_err(got.sum(1), moe_reference(x, experts, weights, mlp1, mlp2)))
    e_f32, e_half = errors
    assert e_f32 < 1e-5, f"float32 products {e_f32:.2e}"
    assert e_half < 1.5 * 2**-9, f"half products {e_half:.2e}"


@pytest.mark.parametrize("kind", ["full", "sliding"])
def test_prefill_attention_matches_float64(kind: str) -> None:
    """Chunked prefill of two sequences of different lengths (padded rows, a second chunk that
    sees the first through the cache), with the cache's own metadata."""
    from agent.engine.gptoss.kernels.attention import prefill_attention
    from agent.engine.gptoss.kv_cache import KVCache
    from agent.engine.gptoss.random_checkpoint import preset

    cfg = preset("custom", sliding_window=128, num_attention_heads=64, num_key_value_heads=8, head_dim=64)
    cache = KVCache(cfg, num_blocks=96, block_size=16, num_rings=2, prefill_chunk=300,
                    device=torch.device("cuda"), dtype=torch.bfloat16)  # fmt: skip
    seqs = [cache.allocate(), cache.allocate()]
    for seq in seqs:
        cache.reserve(seq, 600)
    gen = torch.Generator(device="cuda").manual_seed(5)
    pools = cache.full_k[0] if kind == "full" else cache.slide_k[0]
    k_pool = torch.randn(pools.shape, device="cuda", generator=gen).to(torch.bfloat16)
    v_pool = torch.randn(pools.shape, device="cuda", generator=gen).to(torch.bfloat16)
    sinks = torch.randn(64, device="cuda", generator=gen)
    window = cfg.sliding_window if kind == "sliding" else None
    for starts, counts in (([0, 0], [300, 77]), ([300, 77], [250, 300])):
        meta = cache.build_meta(seqs, starts, counts)
        tm = meta.full if kind == "full" else meta.sliding
        read, kpos = tm.read_slots, tm.key_positions
        q = torch.randn(2, meta.positions.shape[1], 64, 64, device="cuda", generator=gen).to(torch.bfloat16)
        got = prefill_attention(q, k_pool, v_pool, read, kpos, meta.positions, sinks, window)
        ref = attention_reference(q, k_pool, v_pool, read, kpos, meta.positions, sinks, window)
        live = meta.positions >= 0
        assert rel_err(got[live], ref[live]) < 2e-2
        assert not got[~live].any(), "padded query rows attend to nothing"

