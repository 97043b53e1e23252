"""The synchronous engine core: ``step() = schedule() -> execute() -> update()``.

Single-threaded by design; :class:`~agent.engine.gptoss.engine.GptOssEngine` runs it in one
worker thread and moves requests and events across the thread boundary.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import torch

from agent.engine.base import EngineRequest
from agent.errors import EngineError

from .kv_cache import KVCache, SeqCache
from .model import GptOssModel
from .sampling import make_generator, sample_batch
from .scheduler import Output, Scheduler, Sequence, StepPlan
from .weights import ModelWeights, load_weights


@dataclass(frozen=True, slots=True)
class CoreOptions:
    max_batch: int = 8  # sequences decoding together
    max_context: int = 4096  # prompt + completion per sequence
    prefill_chunk: int = 256  # prompt tokens read per step (bounds a step's latency)
    block_size: int = 16  # positions per full-attention cache block
    num_blocks: int | None = None  # default: max_batch full contexts
    max_retained: int | None = None  # finished caches kept for prefix reuse; default max_batch


class EngineCore:
    def __init__(self, weights: ModelWeights, options: CoreOptions = CoreOptions()) -> None:
        self.options = options
        self.device = weights.device
        self.model = GptOssModel(weights, max_positions=options.max_context)
        per_seq = -(-options.max_context // options.block_size)
        retained = options.max_retained if options.max_retained is not None else options.max_batch
        self.cache = KVCache(
            weights.config,
            num_blocks=options.num_blocks or options.max_batch * per_seq,
            block_size=options.block_size,
            num_rings=options.max_batch + retained,
            prefill_chunk=options.prefill_chunk,
            device=weights.device,
            dtype=weights.dtype,
        )
        self.scheduler = Scheduler(
            self.cache,
            max_batch=options.max_batch,
            max_context=options.max_context,
            prefill_chunk=options.prefill_chunk,
            max_retained=retained,
        )
        self._ids = itertools.count(1)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        options: CoreOptions = CoreOptions(),
    ) -> EngineCore:
        dev = torch.device(device)
        dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
        return cls(load_weights(path, device=dev, dtype=dtype), options)

    def validate(self, request: EngineRequest) -> None:
        """Raises EngineError for a request this engine can never run."""
        n, limit = len(request.prompt_tokens), self.options.max_context
        if n == 0:
            raise EngineError("the prompt is empty")
        if n >= limit:
            raise EngineError(f"prompt of {n} tokens leaves no room in max_context={limit}")
        vocab = self.model.config.vocab_size
        if any(not 0 <= t < vocab for t in request.prompt_tokens):
            raise EngineError(f"prompt holds a token id outside the vocabulary [0, {vocab})")
        need = self.cache.blocks_for(min(n + request.sampling.max_tokens, limit))
        if need > self.cache.num_blocks:
            raise EngineError(
                f"request needs {need} cache blocks, the engine has {self.cache.num_blocks}"
            )

    def new_id(self) -> int:
        """A fresh request id; safe from any thread (``itertools.count`` is atomic)."""
        return next(self._ids)

    def add(self, request: EngineRequest, request_id: int | None = None) -> int:
        """Queue ``request``; returns its id. Call :meth:`validate` first."""
        rid = request_id if request_id is not None else self.new_id()
        max_tokens = min(
            request.sampling.max_tokens, self.options.max_context - len(request.prompt_tokens)
        )
        generator = make_generator(request.sampling, self.device)
        self.scheduler.add(Sequence(rid, request, max_tokens, generator))
        return rid

    def abort(self, request_id: int) -> list[Output]:
        out = self.scheduler.abort(request_id)
        return [out] if out is not None else []

    @property
    def has_work(self) -> bool:
        return self.scheduler.has_work

    def step(self) -> list[Output]:
        plan = self.scheduler.schedule()
        if plan.empty:
            return []
        return self._execute(plan)

    def _execute(self, plan: StepPlan) -> list[Output]:
        outputs: list[Output] = []
        for seq, count in plan.prefills:
            outputs += self._prefill(seq, count)
        if plan.decodes:
            outputs += self._decode(plan.decodes)
        return outputs

    def _prefill(self, seq: Sequence, count: int) -> list[Output]:
        """Read the next ``count`` prompt tokens; sample token one once the prompt is read."""
        cache = _cache_of(seq)
        start = cache.length
        tokens = torch.tensor([seq.tokens[start : start + count]], device=self.device)  # [1, S]
        meta = self.cache.build_meta([cache], [start], [count])
        last = torch.tensor([count - 1], device=self.device)
        logits = self.model.forward(tokens, meta, self.cache, last)  # [1, V]
        if seq.pending > 0:
            return []
        token = sample_batch(logits, [seq.request.sampling], [seq.generator])[0]
        return self.scheduler.update(seq, token)

    def _decode(self, seqs: list[Sequence]) -> list[Output]:
        """One token for each of ``seqs`` in a single ``[B, 1]`` forward pass."""
        logits = self.model.decode([s.tokens[-1] for s in seqs], [_cache_of(s) for s in seqs], self.cache)
        params = [s.request.sampling for s in seqs]
        new = sample_batch(logits, params, [s.generator for s in seqs])
        outputs: list[Output] = []
        for seq, token in zip(seqs, new, strict=True):
            outputs += self.scheduler.update(seq, token)
        return outputs

    def abort_all(self) -> list[Output]:
        return self.scheduler.abort_all()


def _cache_of(seq: Sequence) -> SeqCache:
    assert seq.cache is not None, "scheduled sequences always hold a cache"
    return seq.cache
