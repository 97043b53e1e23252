"""CUDA graphs for the decode step: one captured forward per batch-size bucket.

A decode step at batch 1 launches ~30 kernels per layer; on their own those launches cost more
than the step's memory traffic. Capturing the whole forward once per batch bucket and replaying
it removes the CPU from the step. Shapes in the graph are fixed, so:

- the batch is padded to the bucket (padded rows write the scratch slot 0 and see no keys);
- the key columns are padded to the cache's full width (``max_positions`` for full layers, the
  window for sliding ones) with position -1; the attention kernel stops at each row's live
  length (which the metadata kernel writes), so the padding costs no read of the cache.

The graph's inputs are one int64 buffer (tokens, positions, rings, block tables) filled by a
single copy from pinned host memory, and the attention metadata is computed from them inside
the graph, in one launch (``step_meta.decode_meta``, the layout of ``KVCache.decode_meta``).
Building the metadata on the host and copying it piece by piece cost ~0.5 ms a step on the
H200's host, a quarter of a batch-1 step, with the GPU idle; ``KVCache.decode_meta``'s twenty
PyTorch ops in the graph cost 0.11 ms.
"""

from __future__ import annotations

import ctypes
import threading
from array import array
from typing import TYPE_CHECKING

import structlog
import torch

from . import step_meta

if TYPE_CHECKING:
    from ..kv_cache import KVCache, SeqCache
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


class DecodeGraph:
    """``model.forward`` for ``[batch, 1]`` tokens, captured once, replayed per step."""

    def __init__(self, model: GptOssModel, cache: KVCache, batch: int) -> None:
        dev = model.weights.device
        self.batch = batch
        self.full_width = model.rope.shape[0]
        self.table_width = -(-self.full_width // cache.block_size)
        size = batch * (3 + self.table_width)
        self.inputs = torch.zeros(size, dtype=torch.long, device=dev)
        self.staging = torch.zeros(size, dtype=torch.long, pin_memory=True)
        self.staged = torch.cuda.Event()  # the copy out of ``staging`` is done: it may be refilled
        self.tokens = self.inputs[:batch].view(batch, 1)
        positions, rings = self.inputs[batch : 2 * batch], self.inputs[2 * batch : 3 * batch]
        table = self.inputs[3 * batch :].view(batch, self.table_width)
        positions.fill_(-1)
        self.logit_index = torch.zeros(batch, dtype=torch.long, device=dev)

        def forward() -> torch.Tensor:
            meta = step_meta.decode_meta(cache, table, rings, positions, self.full_width)
            return model.forward(self.tokens, meta, cache, self.logit_index)

        with _Capturing():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up: compile the Triton kernels, size the pools
                for _ in range(2):
                    forward()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = forward()
        log.info("decode_graph.captured", batch=batch, full_width=self.full_width)

    def fits(self, seqs: list[SeqCache]) -> bool:
        return all(q.length < self.full_width and len(q.blocks) <= self.table_width for q in seqs)

    def run(self, tokens: list[int], positions: list[int], rings: list[int], tables: list[list[int]]) -> torch.Tensor:
        """Stage the step's inputs in pinned memory, copy them over in one go, replay."""
        b, size = len(tokens), self.batch
        # Only what the step needs is written: padded rows must get position -1 (no key is
        # written for them), but their tokens, rings and every table entry past a sequence's
        # blocks may hold anything a previous step left there (valid ids, masked out).
        head = array("q", tokens)
        head.extend(positions)
        head.extend([-1] * (size - b))
        head.extend(rings)
        blocks = array("q")
        for table in tables:
            blocks.extend(table)
        self.staged.synchronize()  # the previous step's copy has left the staging buffer
        dst, src = self.staging.data_ptr(), head.buffer_info()[0]
        ctypes.memmove(dst, src, 8 * b)  # tokens
        ctypes.memmove(dst + 8 * size, src + 8 * b, 8 * size)  # positions, padded
        ctypes.memmove(dst + 16 * size, src + 8 * (b + size), 8 * b)  # rings
        src, row = blocks.buffer_info()[0], dst + 8 * 3 * size
        for table in tables:
            ctypes.memmove(row, src, 8 * len(table))
            src += 8 * len(table)
            row += 8 * self.table_width
        self.inputs.copy_(self.staging, non_blocking=True)
        self.staged.record()
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

    def forward(self, tokens: list[int], seqs: list[SeqCache]) -> torch.Tensor | None:
        """Logits ``[B, V]`` of appending ``tokens[b]`` to ``seqs[b]`` (their lengths advance),
        from a replay; None when no graph fits (then nothing changed: run eagerly)."""
        size = self.bucket(len(seqs))
        if size is None:
            return None
        graph = self.graphs.get(size)
        if graph is None:
            graph = self.graphs[size] = DecodeGraph(self.model, self.cache, size)
        if not graph.fits(seqs):
            return None
        return graph.run(tokens, *self.cache.decode_inputs(seqs))


def graphed_decode(
    model: GptOssModel, tokens: list[int], seqs: list[SeqCache], cache: KVCache
) -> torch.Tensor | None:
    """The model hook's entry: replay (capturing first if needed) or None to run eagerly."""
    graphs: DecodeGraphs | None = getattr(model, "_decode_graphs", None)
    if graphs is None or graphs.cache is not cache:
        graphs = DecodeGraphs(model, cache)
        model._decode_graphs = graphs  # type: ignore[attr-defined]
    return graphs.forward(tokens, seqs)
