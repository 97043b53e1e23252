"""CUDA graphs for the decode step: one captured forward per batch-size bucket.

A decode step at batch 1 launches ~30 kernels per layer; on their own those launches cost more
than the step's memory traffic. Capturing the whole forward once per batch bucket and replaying
it removes the CPU from the step. Shapes in the graph are fixed, so:

- the batch is padded to the bucket (padded rows write the scratch slot 0 and see no keys);
- the key columns are padded to the cache's full width (``max_positions`` for full layers, the
  window for sliding ones) with position -1; the attention kernel stops at each row's live
  length (which the metadata kernel writes), so the padding costs no read of the cache.

The graph's inputs are one int64 buffer (tokens, positions, rings, block tables). The host
writes them into pinned memory and the graph's first node copies them over; the attention
metadata is computed from them inside the graph, in one launch (``step_meta.decode_meta``, the
layout of ``KVCache.decode_meta``). A step's tokens may instead be a device tensor (sampled by
the step before, not yet read by the host): they are copied to the graph's feed buffer and the
staged tokens say -1 (the metadata launch resolves them).
Building the metadata on the host and copying it piece by piece cost ~0.5 ms a step on the
H200's host, a quarter of a batch-1 step, with the GPU idle; ``KVCache.decode_meta``'s twenty
PyTorch ops in the graph cost 0.11 ms. Every CUDA call the host makes before the replay delays
the step's first kernel by its cost (5-15 us each on the H200's host): with the copy outside the
graph, the copy and the event marking it done cost 0.02-0.07 ms of a 1.5 ms step
(results_engine_gpu.txt, runs 111-113).

A bucket holds up to two graphs, each with its own staging buffer: while one replay is queued or
running, the host stages the next step into the other (``EngineCore``'s run-ahead launches a
step before reading the one before). They share one memory pool: replays on one stream never
overlap.

Where the unembedding runs in its own kernel (up to 16 rows: ``unembed_chooses``), each graph
also chooses its rows' greedy tokens: the unembedding folds them into the graph's row of the
bucket's packed choices (``sampling.pack_greedy``), and the graph's last node copies that row to
pinned memory, so a greedy step needs no launch and no copy besides the replay. The next step's
graph reads them from there (staged ``-2 - s``: its metadata launch unpacks them). While such
tokens feed a step, the bucket's two graphs take turns: a graph's choices stay in place until
the host has read them, which ``EngineCore`` does before the step after next. Sampled on the
host instead, a step costs an argmax launch, the feed's copy and the read-back's copy between
two replays: 0.02 ms of a 1.46 ms batch-1 step on the H200 (results_engine_gpu.txt, runs
131-133).
"""

from __future__ import annotations

import bisect
import ctypes
import gc
from array import array
from typing import TYPE_CHECKING

import structlog
import torch

from ..sampling import NO_CHOICE, GreedyTokens
from . import capture_state, step_meta, unembed_chooses
from .step_meta import TokenFeed

if TYPE_CHECKING:
    from ..kv_cache import KVCache, SeqCache
    from ..model import GptOssModel
    from ..sampling import StepTokens

log = structlog.get_logger(__name__)

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _Capturing:
    """While a graph is captured or warmed up, ``model.decode`` runs eagerly (no recursion), and
    the garbage collector does not run: a collection inside the capture could free another
    model's graphs, events or pinned buffers, whose CUDA calls abort a capture (seen on the
    H200 as an abort in the middle of a capture). Garbage made before is collected first."""

    def __enter__(self) -> None:
        capture_state.on = True
        gc.collect()
        self.collecting = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        capture_state.on = False
        if self.collecting:
            gc.enable()


class DecodeGraph:
    """``model.forward`` for ``[batch, 1]`` tokens, captured once, replayed per step. ``chosen``
    is the bucket's ``[2, batch]`` packed greedy choices; this graph writes row ``slot``."""

    def __init__(
        self, model: GptOssModel, cache: KVCache, batch: int, chosen: torch.Tensor, slot: int,
        pool: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        dev = model.weights.device
        self.batch = batch
        self.chosen = chosen
        self.slot = slot
        self.chooses = unembed_chooses(batch, model.weights.unembedding)  # greedy tokens in the graph
        self.chosen_host = torch.empty(batch, dtype=torch.long, pin_memory=True)  # the replay copies its row here
        self.full_width = model.rope.shape[0]
        self.table_width = -(-self.full_width // cache.block_size)
        size = batch * (3 + self.table_width)
        self.inputs = torch.zeros(size, dtype=torch.long, device=dev)
        self.staging = torch.zeros(size, dtype=torch.long, pin_memory=True)
        self.staging[batch : 2 * batch] = -1  # positions: no row is live until a step says so
        # The host writes the staging buffer through a memoryview: no torch op, no CUDA call.
        self.host = memoryview((ctypes.c_int64 * size).from_address(self.staging.data_ptr())).cast("B").cast("q")
        self.replayed = torch.cuda.Event()  # the last replay is done: the staging buffer is free
        self.feed = torch.zeros(batch, dtype=torch.long, device=dev)  # tokens staged -1 come from here
        out = torch.zeros(batch, dtype=torch.long, device=dev)
        tokens = TokenFeed(self.inputs[:batch], self.feed, out, chosen, slot)
        positions, rings = self.inputs[batch : 2 * batch], self.inputs[2 * batch : 3 * batch]
        table = self.inputs[3 * batch :].view(batch, self.table_width)
        self.logit_index = torch.zeros(batch, dtype=torch.long, device=dev)

        def forward() -> torch.Tensor:
            self.inputs.copy_(self.staging, non_blocking=True)  # captured: the graph's first node
            meta = step_meta.decode_meta(cache, table, rings, positions, self.full_width, feed=tokens)
            if not self.chooses:
                return model.forward(tokens.out.view(batch, 1), meta, cache, self.logit_index)
            logits = model.forward(tokens.out.view(batch, 1), meta, cache, self.logit_index, best=chosen[slot])
            self.chosen_host.copy_(chosen[slot], non_blocking=True)  # captured: the graph's last node
            return logits

        with _Capturing():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up: compile the Triton kernels, size the pools
                for _ in range(2):
                    forward()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=pool):
                self.logits = forward()
        log.info("decode_graph.captured", batch=batch, full_width=self.full_width)

    def fits(self, seqs: list[SeqCache]) -> bool:
        return all(q.length < self.full_width and len(q.blocks) <= self.table_width for q in seqs)

    def busy(self) -> bool:
        """Is a replay of this graph queued or running (its staging buffer not free yet)?"""
        return not self.replayed.query()

    def run(
        self, tokens: list[int] | torch.Tensor, positions: list[int], rings: list[int], tables: list[list[int]]
    ) -> None:
        """Write the step's inputs into the staging buffer and replay (the graph copies them in).
        ``tokens`` on the device (``[B]`` int64) are copied to the feed buffer instead (staged
        -1; ``-2 - s`` reads row ``s`` of the bucket's greedy choices). The previous replay must
        be done (:meth:`busy` false): it has copied the buffer out."""
        b, size, host = len(positions), self.batch, self.host
        # Padded rows must get position -1 (no key is written for them); their tokens, rings
        # and every table entry past a sequence's blocks may hold anything a previous step left
        # there (valid ids, masked out).
        pad = [0] * (size - b)
        if isinstance(tokens, torch.Tensor):
            self.feed[:b].copy_(tokens, non_blocking=True)  # queued after the kernels that sampled them
            tokens = [-1] * b
        head = array("q", [*tokens, *pad, *positions, *[-1] * (size - b), *rings, *pad])
        host[: 3 * size] = head
        row = 3 * size
        for table in tables:
            host[row : row + len(table)] = array("q", table)
            row += self.table_width
        self.graph.replay()
        self.replayed.record()

    def logits_of(self, b: int) -> torch.Tensor:
        """The last replay's logits ``[b, V]`` (a copy: the next replay overwrites them)."""
        return self.logits[:b].clone()

    def greedy_of(self, b: int) -> GreedyTokens:
        """The last replay's greedy tokens, valid until this graph replays again."""
        return GreedyTokens(self.chosen[self.slot, :b], self.chosen_host[:b], self.replayed)


class DecodeGraphs:
    """Per batch bucket one :class:`DecodeGraph`, made on first use, and a second one made when
    a step is launched while the first one's replay is still queued, or fed by its greedy
    tokens; for one model and cache."""

    def __init__(self, model: GptOssModel, cache: KVCache) -> None:
        self.model = model
        self.cache = cache
        self.graphs: dict[int, list[DecodeGraph]] = {}
        self.chosen: dict[int, torch.Tensor] = {}  # per bucket: [2, size] packed greedy choices

    def bucket(self, batch: int) -> int | None:
        i = bisect.bisect_left(BUCKETS, batch)
        return BUCKETS[i] if i < len(BUCKETS) else None

    def forward(
        self, tokens: StepTokens, seqs: list[SeqCache], *, greedy: bool = False
    ) -> torch.Tensor | GreedyTokens | None:
        """Logits ``[B, V]`` of appending ``tokens[b]`` to ``seqs[b]`` (their lengths advance),
        from a replay, or with ``greedy`` its greedy tokens; None when no graph fits, or with
        ``greedy`` none chooses tokens (then nothing changed: run eagerly, or sample)."""
        size = self.bucket(len(seqs))
        if size is None:
            return None
        pair = self.graphs.setdefault(size, [])
        if not pair:
            self.chosen[size] = torch.full((2, size), NO_CHOICE, dtype=torch.long, device=self.model.device)
            pair.append(DecodeGraph(self.model, self.cache, size, self.chosen[size], 0))
        fed_by = None  # the row of this bucket's choices that holds greedy ``tokens``
        if isinstance(tokens, GreedyTokens):
            offset, row_bytes = tokens.packed.data_ptr() - self.chosen[size].data_ptr(), 8 * size
            fed_by = offset // row_bytes if offset in (0, row_bytes) else None
        index = 1 - fed_by if fed_by is not None else int(pair[0].busy())  # see the module's docstring
        if index == 1 and len(pair) == 1:
            pair.append(DecodeGraph(self.model, self.cache, size, self.chosen[size], 1, pool=pair[0].graph.pool()))
        graph = pair[index]
        if index == 1 or fed_by is not None:
            graph.replayed.synchronize()  # its staging buffer must have been copied in
        if not graph.fits(seqs) or (greedy and not graph.chooses):
            return None
        if isinstance(tokens, GreedyTokens):
            tokens = [-2 - fed_by] * len(seqs) if fed_by is not None else tokens.tokens()
        graph.run(tokens, *self.cache.decode_inputs(seqs))
        return graph.greedy_of(len(seqs)) if greedy else graph.logits_of(len(seqs))


def graphed_decode(
    model: GptOssModel, tokens: StepTokens, seqs: list[SeqCache], cache: KVCache, *, greedy: bool = False
) -> torch.Tensor | GreedyTokens | None:
    """The model hook's entry: replay (capturing first if needed) or None to run eagerly."""
    graphs: DecodeGraphs | None = getattr(model, "_decode_graphs", None)
    if graphs is None or graphs.cache is not cache:
        graphs = DecodeGraphs(model, cache)
        model._decode_graphs = graphs  # type: ignore[attr-defined]
    return graphs.forward(tokens, seqs, greedy=greedy)
