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
