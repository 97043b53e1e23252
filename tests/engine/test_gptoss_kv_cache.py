"""KVCache.build_meta's layout, which the attention kernels rely on: per row, live key columns
first, holding consecutive positions (the prefill kernel turns a query's causal limit and window
into a column range with that), then -1s."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from agent.engine.gptoss.kv_cache import KVCache  # noqa: E402
from agent.engine.gptoss.random_checkpoint import preset  # noqa: E402


def test_live_key_columns_hold_consecutive_positions() -> None:
    cfg = preset("custom", sliding_window=8)
    chunk = 12
    cache = KVCache(cfg, num_blocks=512, block_size=4, num_rings=3, prefill_chunk=chunk,
                    device=torch.device("cpu"), dtype=torch.float32)  # fmt: skip
    seqs = [cache.allocate() for _ in range(3)]
    rng = random.Random(0)
    done = [0, 0, 0]
    checked = 0
    while min(done) < 60:
        counts = [rng.choice([1, 1, 5, chunk]) for _ in seqs]
        for seq, start, count in zip(seqs, done, counts, strict=True):
            cache.reserve(seq, start + count)
        meta = cache.build_meta(seqs, done, counts)
        for b, (start, count) in enumerate(zip(done, counts, strict=True)):
            end = start + count
            for tm, first in ((meta.full, 0), (meta.sliding, None)):
                kpos = tm.key_positions[b].tolist()
                live = sum(p >= 0 for p in kpos)
                assert all(p < 0 for p in kpos[live:]), "live columns first"
                first = kpos[0] if first is None else first
                assert kpos[:live] == list(range(first, first + live)), kpos
                assert first + live == end, "every position up to the last query is readable"
                checked += 1
            # A sliding layer's reads reach back a whole window before the chunk's first query.
            assert meta.sliding.key_positions[b, 0] <= max(start - cfg.sliding_window + 1, 0)
        done = [s + c for s, c in zip(done, counts, strict=True)]
    assert checked > 20


def _padded(t: torch.Tensor, width: int, fill: int) -> torch.Tensor:
    out = torch.full((t.shape[0], width), fill, dtype=t.dtype)
    out[:, : t.shape[1]] = t
    return out


def test_decode_meta_from_tensors_equals_build_meta() -> None:
    """The CUDA graphs' decode metadata (tensor ops only, fixed widths) is build_meta's, padded:
    over sequences of different lengths, past the sliding window and across blocks, with a
    padded row (position -1) that reads nothing and writes the scratch slot."""
    cfg = preset("custom", sliding_window=8)
    cache = KVCache(cfg, num_blocks=64, block_size=4, num_rings=3, prefill_chunk=6,
                    device=torch.device("cpu"), dtype=torch.float32)  # fmt: skip
    twin = KVCache(cfg, num_blocks=64, block_size=4, num_rings=3, prefill_chunk=6,
                   device=torch.device("cpu"), dtype=torch.float32)  # fmt: skip
    seqs, twins = [cache.allocate() for _ in range(3)], [twin.allocate() for _ in range(3)]
    full_width, table_width = 48, 12
    for step, length in enumerate((0, 3, 9, 17)):  # the sequences' lengths differ by 6
        for i, (q, t) in enumerate(zip(seqs, twins, strict=True)):
            q.length = t.length = length + 6 * i
            cache.reserve(q, q.length + 1)
            twin.reserve(t, t.length + 1)
        want = twin.build_meta(twins, [t.length for t in twins], [1, 1, 1])
        positions, rings, tables = cache.decode_inputs(seqs)
        assert [q.length for q in seqs] == [t.length for t in twins], "lengths advance alike"
        table = torch.zeros(4, table_width, dtype=torch.long)
        for b, blocks in enumerate(tables):
            table[b, : len(blocks)] = torch.tensor(blocks)
        got = cache.decode_meta(table, torch.tensor([*rings, 0]), torch.tensor([*positions, -1]), full_width)
        assert torch.equal(got.positions[:3], want.positions) and got.positions[3].item() == -1, step
        for g, w, width in ((got.full, want.full, full_width), (got.sliding, want.sliding, cfg.sliding_window)):
            assert torch.equal(g.write_slots[:3], w.write_slots) and g.write_slots[3].item() == 0
            assert torch.equal(g.read_slots[:3], _padded(w.read_slots, width, 0)), step
            assert torch.equal(g.key_positions[:3], _padded(w.key_positions, width, -1)), step
            assert (g.key_positions[3] == -1).all() and (g.read_slots[3] == 0).all()
