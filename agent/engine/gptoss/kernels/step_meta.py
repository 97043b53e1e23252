"""A decode step's attention metadata in one launch (:meth:`KVCache.decode_meta`'s layout).

The PyTorch form builds it from about twenty elementwise ops over ``[B, full_width]`` columns,
each a launch of its own that waits for the one before: inside the captured batch-1 step of the
20b shape they took 0.11 ms of 1.69 (results_engine_gpu.txt, run 83). Here one program per
(row, block of key columns) computes the positions, the write slots, both layer types' read slots
and key positions, and the live key columns per row, which the attention kernels would otherwise
count with a reduction launch per layer type.

With a token *feed* the same launch also resolves the step's tokens: a row whose staged token is
negative takes the token that the previous step sampled on the GPU (``EngineCore``'s run-ahead
feeds a step before the host has read the one before it): staged -1 from the feed buffer,
staged ``-2 - s`` from row ``s`` of the bucket's greedy choices (packed, ``sampling.pack_greedy``),
which a graph's unembedding writes. It then resets its own row of choices for the step's atomics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..kv_cache import AttentionMeta, KVCache, LayerTypeMeta


@dataclass(frozen=True, slots=True)
class TokenFeed:
    """Where a decode step's tokens come from: ``staged [B]`` (from the host), for rows staged
    -1 ``feed [B]`` (a device tensor), for rows staged ``-2 - s`` ``chosen[s]`` (greedy choices
    ``[2, B]``, packed); resolved into ``out [B]``. Row ``own`` of ``chosen`` is reset to
    ``sampling.NO_CHOICE`` for this step's unembedding."""

    staged: torch.Tensor
    feed: torch.Tensor
    out: torch.Tensor
    chosen: torch.Tensor
    own: int


@triton.jit
def _decode_meta(
    table_ptr, table_width, rings_ptr, positions_ptr,  # [B, T] block ids, [B], [B] (-1: padding)
    pos_out, f_write, f_read, f_pos, f_len, s_write, s_read, s_pos, s_len,  # see decode_meta
    full_width, span, block_size, ring_size,
    staged_ptr, feed_ptr, tokens_out, chosen_ptr, own,  # FEED: see TokenFeed (chosen [2, B])
    BLOCK: tl.constexpr, FEED: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    cb = tl.program_id(1)
    p = tl.load(positions_ptr + b)
    live_row = p >= 0
    start = tl.maximum(p, 0)
    end = tl.where(live_row, start + 1, 0)  # keys visible to the query: positions < end
    row_table = table_ptr + b * table_width
    ring_base = 1 + tl.load(rings_ptr + b) * ring_size
    cols = cb * BLOCK + tl.arange(0, BLOCK)
    # Full layers: key column c holds position c, through the block table.
    in_full = cols < full_width
    live = cols < end
    block = tl.load(row_table + tl.minimum(cols // block_size, table_width - 1), mask=in_full & live, other=0)
    slot = 1 + block * block_size + cols % block_size
    tl.store(f_read + b * full_width + cols, tl.where(live, slot, 0), mask=in_full)
    tl.store(f_pos + b * full_width + cols, tl.where(live, cols, -1), mask=in_full)
    # Sliding layers: the last ``span`` positions before ``end``, in the row's ring.
    in_span = cols < span
    sp = tl.maximum(end - span, 0) + cols
    live = sp < end
    tl.store(s_read + b * span + cols, tl.where(live, ring_base + sp % ring_size, 0), mask=in_span)
    tl.store(s_pos + b * span + cols, tl.where(live, sp, -1), mask=in_span)
    if cb == 0:
        tl.store(pos_out + b, tl.where(live_row, start, -1))
        first = tl.load(row_table + tl.minimum(start // block_size, table_width - 1))
        tl.store(f_write + b, tl.where(live_row, 1 + first * block_size + start % block_size, 0))
        tl.store(s_write + b, tl.where(live_row, ring_base + start % ring_size, 0))
        tl.store(f_len + b, tl.minimum(end, full_width).to(tl.int32))
        tl.store(s_len + b, tl.minimum(end, span).to(tl.int32))
        if FEED:
            batch = tl.num_programs(0)
            token = tl.load(staged_ptr + b)
            packed = tl.load(chosen_ptr + tl.minimum(tl.maximum(-2 - token, 0), 1) * batch + b)
            greedy = 4294967295 - (packed & 4294967295)  # sampling.unpack_greedy
            fed = tl.where(token == -1, tl.load(feed_ptr + b), greedy)
            tl.store(tokens_out + b, tl.where(token < 0, fed, token))
            # After the load above (same address when the step before ran this graph).
            tl.store(chosen_ptr + own * batch + b, -9223372036854775807 - 1)  # sampling.NO_CHOICE


def decode_meta(
    cache: KVCache, table: torch.Tensor, rings: torch.Tensor, positions: torch.Tensor, full_width: int,
    feed: TokenFeed | None = None,
) -> AttentionMeta:
    """:meth:`KVCache.decode_meta` (same arguments, same tensors) plus each layer type's live key
    columns (``LayerTypeMeta.lengths``), from one launch; with ``feed``, the step's tokens are
    resolved into ``feed.out`` in the same launch."""
    b = table.shape[0]
    dev = table.device
    span = min(cache.ring_size, cache.config.sliding_window)
    table = table.contiguous()

    def longs(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device=dev, dtype=torch.long)

    pos, f_write, f_read, f_pos, s_write, s_read, s_pos = (
        longs(b, 1), longs(b, 1), longs(b, full_width), longs(b, full_width), longs(b, 1), longs(b, span),
        longs(b, span),
    )  # fmt: skip
    f_len, s_len = (torch.empty(b, device=dev, dtype=torch.int32) for _ in range(2))
    block = min(1024, triton.next_power_of_2(max(full_width, span)))
    _decode_meta[(b, triton.cdiv(max(full_width, span), block))](
        table, table.shape[1], rings.contiguous(), positions.contiguous(),
        pos, f_write, f_read, f_pos, f_len, s_write, s_read, s_pos, s_len,
        full_width, span, cache.block_size, cache.ring_size,
        *((feed.staged, feed.feed, feed.out, feed.chosen, feed.own) if feed is not None else (pos, pos, pos, pos, 0)),
        BLOCK=block, FEED=feed is not None, num_warps=4,
    )  # fmt: skip
    return AttentionMeta(
        positions=pos,
        full=LayerTypeMeta(f_write, f_read, f_pos, f_len),
        sliding=LayerTypeMeta(s_write, s_read, s_pos, s_len),
    )
