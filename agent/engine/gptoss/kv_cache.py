"""Key/value memory shared by every sequence the engine holds.

Full-attention layers page their keys: a pool of fixed-size blocks, each sequence owning a list
of them (a block table), so sequences of any length share one allocation. Sliding-window layers
never look further back than the window, so each sequence owns one *ring* of
``window + prefill_chunk - 1`` slots where position ``p`` lives at ``p % ring``: enough for a
whole prefill chunk to see its window, and constant in the context length.

Slot 0 of each pool is scratch: padded query rows write there and padded key columns read it
(masked out by position -1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from .config import ModelConfig


class CacheFull(Exception):
    """No free blocks or rings; internal signal for the scheduler (never reaches users)."""


@dataclass(slots=True)
class SeqCache:
    """One sequence's share of the cache."""

    ring: int  # index of its sliding-window ring
    blocks: list[int] = field(default_factory=list)  # full-attention block table
    length: int = 0  # positions whose keys/values are written


@dataclass(frozen=True, slots=True)
class LayerTypeMeta:
    write_slots: torch.Tensor  # [B, S] flat pool slot per query token (0 = scratch)
    read_slots: torch.Tensor  # [B, L] flat pool slot per key column
    key_positions: torch.Tensor  # [B, L] absolute position of each key, -1 = empty
    lengths: torch.Tensor | None = None  # [B] int32 live (left-packed) key columns, if known


@dataclass(frozen=True, slots=True)
class AttentionMeta:
    """Everything attention needs to know about a padded batch ``[B, S]``."""

    positions: torch.Tensor  # [B, S] absolute positions of the queries, -1 = padding
    full: LayerTypeMeta
    sliding: LayerTypeMeta


class KVCache:
    def __init__(
        self,
        config: ModelConfig,
        *,
        num_blocks: int,
        block_size: int,
        num_rings: int,
        prefill_chunk: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.config = config
        self.block_size = block_size
        self.ring_size = config.sliding_window + prefill_chunk - 1
        self.device = device
        kv = (config.num_key_value_heads, config.head_dim)
        n_full, n_slide = len(config.full_layers), len(config.sliding_layers)
        full_slots = 1 + num_blocks * block_size
        slide_slots = 1 + num_rings * self.ring_size
        # [layers of that type, slots, Hkv, D]; keys and values separately.
        self.full_k = torch.zeros(n_full, full_slots, *kv, device=device, dtype=dtype)
        self.full_v = torch.zeros_like(self.full_k)
        self.slide_k = torch.zeros(n_slide, slide_slots, *kv, device=device, dtype=dtype)
        self.slide_v = torch.zeros_like(self.slide_k)
        self._pool_index = {layer: ("full", j) for j, layer in enumerate(config.full_layers)} | {
            layer: ("sliding", j) for j, layer in enumerate(config.sliding_layers)
        }
        self.free_blocks: list[int] = list(range(num_blocks - 1, -1, -1))
        self.free_rings: list[int] = list(range(num_rings - 1, -1, -1))
        self.num_blocks = num_blocks

    def layer_pools(self, layer: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        kind, j = self._pool_index[layer]
        if kind == "full":
            return kind, self.full_k[j], self.full_v[j]
        return kind, self.slide_k[j], self.slide_v[j]

    def nbytes(self) -> int:
        tensors = (self.full_k, self.full_v, self.slide_k, self.slide_v)
        return sum(t.numel() * t.element_size() for t in tensors)

    # -- allocation -----------------------------------------------------------------------

    def blocks_for(self, length: int) -> int:
        return math.ceil(length / self.block_size)

    def allocate(self) -> SeqCache:
        if not self.free_rings:
            raise CacheFull("no free sliding-window ring")
        return SeqCache(ring=self.free_rings.pop())

    def reserve(self, seq: SeqCache, length: int) -> None:
        """Make room for ``length`` positions; all or nothing."""
        need = self.blocks_for(length) - len(seq.blocks)
        if need > len(self.free_blocks):
            raise CacheFull(f"need {need} blocks, {len(self.free_blocks)} free")
        for _ in range(max(need, 0)):
            seq.blocks.append(self.free_blocks.pop())

    def truncate(self, seq: SeqCache, length: int) -> None:
        """Forget positions ``>= length`` (the ring's stale slots are masked by position)."""
        keep = self.blocks_for(length)
        self.free_blocks.extend(reversed(seq.blocks[keep:]))
        del seq.blocks[keep:]
        seq.length = min(seq.length, length)

    def free(self, seq: SeqCache) -> None:
        self.truncate(seq, 0)
        self.free_rings.append(seq.ring)

    def reusable(self, seq: SeqCache, prefix: int) -> bool:
        """Can a continuation start at position ``prefix`` of ``seq``'s cached positions?

        Full layers keep everything; the ring must still hold the window before ``prefix``,
        i.e. positions ``[prefix - window + 1, prefix)`` were not overwritten.
        """
        return prefix <= seq.length and prefix >= seq.length - (
            self.ring_size - self.config.sliding_window + 1
        )

    # -- slot arithmetic ------------------------------------------------------------------

    def _full_slots(self, table: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Pool slots of positions ``p [B, X]`` through block tables ``table [B, T]``."""
        block = table.gather(1, (p // self.block_size).clamp(0, table.shape[1] - 1))
        return 1 + block * self.block_size + p % self.block_size

    def _ring_slots(self, rings: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Ring slots of positions ``p [B, X]`` in rings ``rings [B, 1]``."""
        return 1 + rings * self.ring_size + p % self.ring_size

    def decode_inputs(self, seqs: list[SeqCache]) -> tuple[list[int], list[int], list[list[int]]]:
        """What :meth:`decode_meta` needs for one decode step of ``seqs`` (one new token each, at
        position ``length``): positions, rings and block tables, as plain lists. Advances each
        sequence's ``length`` like :meth:`build_meta` (the caller runs the step right after)."""
        positions = [q.length for q in seqs]
        for q in seqs:
            q.length += 1
        return positions, [q.ring for q in seqs], [q.blocks for q in seqs]

    def decode_meta(
        self, table: torch.Tensor, rings: torch.Tensor, positions: torch.Tensor, full_width: int
    ) -> AttentionMeta:
        """:meth:`build_meta`'s layout for a decode step, from tensors only: no value is read
        back to the host and every shape follows the inputs', so a CUDA graph can capture it
        and replay it with new inputs. ``table [B, T]`` block ids (entries past a sequence's
        blocks: any valid id), ``rings [B]``, ``positions [B]`` the new token's position, -1
        for a padded row (no keys, writes the scratch slot). Key columns: ``full_width`` for
        full layers, the window for sliding ones; live columns first, then -1s, as there."""
        row_live = (positions >= 0)[:, None]  # [B, 1]
        start = positions.clamp_min(0)[:, None]
        end = torch.where(row_live, start + 1, 0)  # [B, 1] keys visible to the query
        full_slots = partial(self._full_slots, table)
        ring_slots = partial(self._ring_slots, rings[:, None])

        def packed(
            p: torch.Tensor, slots: Callable[[torch.Tensor], torch.Tensor]
        ) -> tuple[torch.Tensor, torch.Tensor]:
            live = p < end
            return slots(p).masked_fill(~live, 0), p.masked_fill(~live, -1)

        cols = torch.arange(full_width, device=table.device).expand(len(table), full_width)
        f_read, f_pos = packed(cols, full_slots)
        span = min(self.ring_size, self.config.sliding_window)  # one query sees a window
        s_read, s_pos = packed((end - span).clamp_min(0) + torch.arange(span, device=table.device), ring_slots)
        return AttentionMeta(
            positions=torch.where(row_live, start, -1),
            full=LayerTypeMeta(full_slots(start).masked_fill(~row_live, 0), f_read, f_pos),
            sliding=LayerTypeMeta(ring_slots(start).masked_fill(~row_live, 0), s_read, s_pos),
        )

    def build_meta(
        self, seqs: list[SeqCache], starts: list[int], counts: list[int]
    ) -> AttentionMeta:
        """Metadata for writing ``counts[b]`` new positions from ``starts[b]`` of each sequence.

        Key columns are left-packed: each row lists its live keys from column 0, then -1s.
        Also advances each sequence's ``length`` (the caller runs the forward pass right after).
        Built with whole-batch tensor ops: a per-sequence Python loop cost more than the
        attention itself at batch 64.
        """
        s = max(counts)
        width = max(len(q.blocks) for q in seqs)
        table = torch.tensor([q.blocks + [0] * (width - len(q.blocks)) for q in seqs])  # [B, nb]
        rings = torch.tensor([q.ring for q in seqs])[:, None]  # [B, 1]
        start_t = torch.tensor(starts)[:, None]
        end_t = start_t + torch.tensor(counts)[:, None]  # [B, 1]

        full_slots = partial(self._full_slots, table)
        ring_slots = partial(self._ring_slots, rings)

        def packed(
            p: torch.Tensor, slots: Callable[[torch.Tensor], torch.Tensor]
        ) -> tuple[torch.Tensor, torch.Tensor]:
            live = (p >= 0) & (p < end_t)
            return slots(p.clamp_min(0)).masked_fill(~live, 0), p.masked_fill(~live, -1)

        queries = start_t + torch.arange(s)  # [B, S]
        fw, pos = packed(queries, full_slots)
        sw, _ = packed(queries, ring_slots)
        lf = int(end_t.max())
        f_read, f_pos = packed(torch.arange(lf).expand(len(seqs), lf), full_slots)
        # Sliding layers read only what a query of this batch can see: window + S - 1 keys
        # (the ring also holds older chunk slack, which decode never needs).
        span = min(self.ring_size, self.config.sliding_window + s - 1, lf)
        recent = (end_t - span).clamp_min(0) + torch.arange(span)  # [B, span]
        s_read, s_pos = packed(recent, ring_slots)
        for q, e in zip(seqs, end_t.flatten().tolist(), strict=True):
            q.length = e
        dev = self.device
        return AttentionMeta(
            positions=pos.to(dev),
            full=LayerTypeMeta(fw.to(dev), f_read.to(dev), f_pos.to(dev)),
            sliding=LayerTypeMeta(sw.to(dev), s_read.to(dev), s_pos.to(dev)),
        )
