"""CUDA graphs for the decode step: one captured forward per batch-size bucket.

A decode step at batch 1 launches ~30 kernels per layer; on their own those launches cost more
than the step's memory traffic. Capturing the whole forward once per batch bucket and replaying
it removes the CPU from the step. Shapes in the graph are fixed, so:

- the batch is padded to the bucket (padded rows write the scratch slot 0 and see no keys);
- the key columns are padded to the cache's full width (``max_positions`` for full layers, the
  ring for sliding ones) with position -1; the attention kernel stops at each row's live length,
  so the padding costs a count over an int64 row per layer, not a read of the cache.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog
import torch

from ..kv_cache import AttentionMeta, LayerTypeMeta

if TYPE_CHECKING:
    from ..kv_cache import KVCache
    from ..model import GptOssModel

log = structlog.get_logger(__name__)

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_local = threading.local()


def capturing() -> bool:
    """True while a graph is being captured or warmed up (the model hook must not recurse)."""
    return getattr(_local, "capturing", False)


class _Capturing:
    def __enter__(self) -> None:
        _local.capturing = True

    def __exit__(self, *exc: object) -> None:
        _local.capturing = False


def _static_meta(b: int, full_w: int, slide_w: int, device: torch.device) -> AttentionMeta:
    def typed(width: int) -> LayerTypeMeta:
        return LayerTypeMeta(
            write_slots=torch.zeros(b, 1, dtype=torch.long, device=device),
            read_slots=torch.zeros(b, width, dtype=torch.long, device=device),
            key_positions=torch.full((b, width), -1, dtype=torch.long, device=device),
        )

    positions = torch.full((b, 1), -1, dtype=torch.long, device=device)
    return AttentionMeta(positions=positions, full=typed(full_w), sliding=typed(slide_w))


def _fill(dst: LayerTypeMeta, src: LayerTypeMeta, b: int) -> None:
    width = src.read_slots.shape[1]
    dst.write_slots.zero_()
    dst.write_slots[:b].copy_(src.write_slots)
    dst.read_slots.zero_()
    dst.read_slots[:b, :width].copy_(src.read_slots)
    dst.key_positions.fill_(-1)
    dst.key_positions[:b, :width].copy_(src.key_positions)


class DecodeGraph:
    """``model.forward`` for ``[batch, 1]`` tokens, captured once, replayed per step."""

    def __init__(self, model: GptOssModel, cache: KVCache, batch: int) -> None:
        dev = model.weights.device
        self.batch = batch
        self.full_width = model.rope.shape[0]
        self.slide_width = cache.ring_size
        self.tokens = torch.zeros(batch, 1, dtype=torch.long, device=dev)
        self.meta = _static_meta(batch, self.full_width, self.slide_width, dev)
        self.logit_index = torch.zeros(batch, dtype=torch.long, device=dev)
        with _Capturing():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up: compile the Triton kernels, size the pools
                for _ in range(2):
                    model.forward(self.tokens, self.meta, cache, self.logit_index)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = model.forward(self.tokens, self.meta, cache, self.logit_index)
        log.info("decode_graph.captured", batch=batch, full_width=self.full_width)

    def fits(self, meta: AttentionMeta) -> bool:
        return (
            meta.full.read_slots.shape[1] <= self.full_width
            and meta.sliding.read_slots.shape[1] <= self.slide_width
        )

    def run(self, tokens: torch.Tensor, meta: AttentionMeta) -> torch.Tensor:
        b = tokens.shape[0]
        self.tokens.zero_()
        self.tokens[:b].copy_(tokens)
        self.meta.positions.fill_(-1)
        self.meta.positions[:b].copy_(meta.positions)
        _fill(self.meta.full, meta.full, b)
        _fill(self.meta.sliding, meta.sliding, b)
        self.graph.replay()
        return self.logits[:b].clone()


class DecodeGraphs:
    """One :class:`DecodeGraph` per batch bucket, made on first use, for one model and cache."""

    def __init__(self, model: GptOssModel, cache: KVCache) -> None:
        self.model = model
        self.cache = cache
        self.graphs: dict[int, DecodeGraph] = {}

    def bucket(self, batch: int) -> int | None:
        return next((size for size in BUCKETS if size >= batch), None)

    def forward(self, tokens: torch.Tensor, meta: AttentionMeta) -> torch.Tensor | None:
        """Logits ``[B, V]`` from a replay, or None when no graph fits (run eagerly then)."""
        size = self.bucket(tokens.shape[0])
        if size is None:
            return None
        graph = self.graphs.get(size)
        if graph is None:
            graph = self.graphs[size] = DecodeGraph(self.model, self.cache, size)
        if not graph.fits(meta):
            return None
        return graph.run(tokens, meta)


def graphed_decode(
    model: GptOssModel, tokens: torch.Tensor, meta: AttentionMeta, cache: KVCache
) -> torch.Tensor | None:
    """The model hook's entry: replay (capturing first if needed) or None to run eagerly."""
    graphs: DecodeGraphs | None = getattr(model, "_decode_graphs", None)
    if graphs is None or graphs.cache is not cache:
        graphs = DecodeGraphs(model, cache)
        model._decode_graphs = graphs  # type: ignore[attr-defined]
    return graphs.forward(tokens, meta)
