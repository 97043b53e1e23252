"""The engine core: ``step() = schedule() -> execute() -> update()``.

Single-threaded by design; :class:`~agent.engine.gptoss.engine.GptOssEngine` runs it in one
worker thread and moves requests and events across the thread boundary.

*Run-ahead* (``CoreOptions.run_ahead``): while the same sequences keep decoding, a step launches
the next decode step, fed with the tokens just sampled on the GPU, before it reads those tokens
back and updates the scheduler. The GPU then goes from one step to the next without waiting for
the host's sampling read-back, scheduling and staging: a batch-1 step of the 20b shape on an H200
took 1.57-1.60 ms synchronously and 1.47 ms so (results_engine_gpu.txt, runs 125 and 129). Tokens
and events are the same as without it: each sequence samples from its own generator in the same
order. A step run ahead for a sequence that then stops (a stop token) is discarded; none is
launched for a token past a sequence's ``max_tokens``. Any change to the batch (a request joins,
finishes or is aborted, a prompt is being read) first lands the step in flight, and the next step
is scheduled as usual: a request that joins starts one step later than without run-ahead.

*Greedy steps in the graph* (``CoreOptions.greedy_in_graph``): when every sequence of a step
decodes greedily, the step's CUDA graph chooses the tokens itself and copies them to the host
(``GptOssModel.decode_greedy``), and the next step's graph reads them where they were written:
with run-ahead the GPU then runs one replay after another with nothing launched in between
(batch 1 of the 20b shape on the H200: 1.465-1.469 -> 1.440-1.449 ms a step, runs 131-137).
The tokens are argmax's (the GPU tests check them against the logits' argmax).
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
from .sampling import GreedyTokens, StepTokens, make_generator, sample_batch, sample_tokens
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
    run_ahead: bool = True  # launch the next decode step before reading this one's tokens
    greedy_in_graph: bool = True  # run-ahead greedy steps choose their tokens inside the CUDA graph


@dataclass(frozen=True, slots=True)
class _Flight:
    """A decode step launched and sampled whose tokens the host has not read yet."""

    seqs: list[Sequence]
    tokens: torch.Tensor | GreedyTokens  # on the model's device: the next step's input
    host: torch.Tensor | None  # [B] the tokens' copy on the host (pinned, filled asynchronously on CUDA)
    copied: torch.cuda.Event | None  # recorded after that copy (None: ``host`` is already filled)

    def read(self) -> list[int]:
        """The step's tokens on the host, once the copy (or the graph's replay) is done."""
        if isinstance(self.tokens, GreedyTokens):
            return self.tokens.tolist()
        assert self.host is not None
        if self.copied is not None:
            self.copied.synchronize()
        return self.host.tolist()


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
        self._flight: _Flight | None = None

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
        # A step in flight may still write the aborted sequence's freed cache slots: later work
        # that reuses them runs after it on the same stream. Its token is dropped when it lands.
        out = self.scheduler.abort(request_id)
        return [out] if out is not None else []

    @property
    def has_work(self) -> bool:
        return self.scheduler.has_work

    def step(self) -> list[Output]:
        flight = self._flight
        if flight is None:
            plan = self.scheduler.schedule()
            if plan.empty:
                return []
            if plan.prefills or not self.options.run_ahead:
                return self._execute(plan)
            flight = self._launch(plan.decodes, [s.tokens[-1] for s in plan.decodes])
        self._flight = None
        if self._can_run_ahead(flight):  # launched before `flight` is read: the GPU never waits
            self._flight = self._launch(flight.seqs, flight.tokens)
        return self._land(flight)

    def _can_run_ahead(self, flight: _Flight) -> bool:
        """May the step after ``flight`` be launched before ``flight`` lands? Only for the same
        batch (nobody joined, finished or was aborted, nobody waits for a free slot), and when
        no sequence reaches ``max_tokens`` with ``flight``'s token."""
        sched = self.scheduler
        if sched.waiting and len(sched.running) < sched.max_batch:
            return False
        same = len(sched.running) == len(flight.seqs)
        if not same or any(a is not b for a, b in zip(sched.running, flight.seqs, strict=True)):
            return False
        return all(len(s.completion) + 2 <= s.max_tokens for s in flight.seqs)

    def _launch(self, seqs: list[Sequence], tokens: StepTokens) -> _Flight:
        """Launch one decode step of ``seqs`` and sample it, reading nothing back."""
        caches = [_cache_of(s) for s in seqs]
        if self.options.greedy_in_graph and all(s.request.sampling.temperature == 0 for s in seqs):
            chosen = self.model.decode_greedy(tokens, caches, self.cache)
            if chosen is not None:
                return _Flight(seqs, chosen, None, None)
        logits = self.model.decode(tokens, caches, self.cache)
        new = sample_tokens(logits, [s.request.sampling for s in seqs], [s.generator for s in seqs])
        if new.device.type != "cuda":
            return _Flight(seqs, new, new, None)
        host = torch.empty(new.shape, dtype=new.dtype, pin_memory=True)
        host.copy_(new, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record()
        return _Flight(seqs, new, host, copied)

    def _land(self, flight: _Flight) -> list[Output]:
        """Read ``flight``'s tokens and update the scheduler; sequences that finished or were
        aborted since its launch drop theirs."""
        tokens = flight.read()
        live = {id(s) for s in self.scheduler.running}
        outputs: list[Output] = []
        for seq, token in zip(flight.seqs, tokens, strict=True):
            if id(seq) in live:
                outputs += self.scheduler.update(seq, token)
        return outputs

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
        self._flight = None
        return self.scheduler.abort_all()


def _cache_of(seq: Sequence) -> SeqCache:
    assert seq.cache is not None, "scheduled sequences always hold a cache"
    return seq.cache
