"""Continuous batching: which sequences run this step, and what their new tokens mean.

Every step decodes one token for each running sequence that has finished its prompt, and
spends up to ``prefill_chunk`` tokens on prompts still being read. A request joins at the next
step once a batch slot and cache memory are free, and leaves the step it finishes. A finished
sequence's cache is *retained* (least recently used first out) so that a later prompt starting
with the same tokens (typically the next turn of the same ``conversation_id``) skips them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import structlog
import torch

from agent.engine.base import EngineEvent, EngineRequest, Finished, FinishReason, TokenDelta

from .kv_cache import CacheFull, KVCache, SeqCache

log = structlog.get_logger(__name__)


@dataclass(slots=True, eq=False)
class Sequence:
    request_id: int
    request: EngineRequest
    max_tokens: int  # the request's, capped by the context
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)  # prompt + completion so far
    cache: SeqCache | None = None
    reused: int = 0

    @property
    def prompt_len(self) -> int:
        return len(self.request.prompt_tokens)

    @property
    def completion(self) -> list[int]:
        return self.tokens[self.prompt_len :]

    @property
    def pending(self) -> int:
        """Tokens whose keys/values are not in the cache yet."""
        assert self.cache is not None
        return len(self.tokens) - self.cache.length


@dataclass(slots=True)
class _Retained:
    conversation_id: str | None
    tokens: list[int]  # token ids of the cached positions
    cache: SeqCache


@dataclass(frozen=True, slots=True)
class StepPlan:
    prefills: list[tuple[Sequence, int]]  # (sequence, how many prompt tokens to read now)
    decodes: list[Sequence]  # one token each

    @property
    def empty(self) -> bool:
        return not self.prefills and not self.decodes


Output = tuple[int, EngineEvent]  # (request id, event)


def _common_prefix(a: list[int], b: tuple[int, ...] | list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class Scheduler:
    def __init__(
        self,
        cache: KVCache,
        *,
        max_batch: int,
        max_context: int,
        prefill_chunk: int,
        max_retained: int,
    ) -> None:
        self.cache = cache
        self.max_retained = max_retained
        self.max_batch = max_batch
        self.max_context = max_context
        self.prefill_chunk = prefill_chunk
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.retained: OrderedDict[int, _Retained] = OrderedDict()
        self._retained_ids = 0

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, seq: Sequence) -> None:
        seq.tokens = list(seq.request.prompt_tokens)
        self.waiting.append(seq)

    def abort(self, request_id: int) -> Output | None:
        for queue in (self.waiting, self.running):
            for seq in queue:
                if seq.request_id == request_id:
                    queue.remove(seq)
                    if seq.cache is not None:
                        self.cache.free(seq.cache)
                    return request_id, self._finished(seq, FinishReason.ABORT)
        return None

    # -- schedule ---------------------------------------------------------------------------

    def schedule(self) -> StepPlan:
        while self.waiting and len(self.running) < self.max_batch and self._admit(self.waiting[0]):
            self.running.append(self.waiting.popleft())
        decodes = [s for s in self.running if s.pending == 1]
        prefills, budget = [], self.prefill_chunk
        for seq in self.running:
            if seq.pending > 1 and budget > 0:
                take = min(seq.pending, budget)
                prefills.append((seq, take))
                budget -= take
        return StepPlan(prefills=prefills, decodes=decodes)

    def _admit(self, seq: Sequence) -> bool:
        """Give ``seq`` a cache (reusing a retained prefix if one fits); False if memory is short."""
        target = min(seq.prompt_len + seq.max_tokens, self.max_context)
        if seq.cache is None:
            seq.cache, seq.reused = self._take_prefix(seq)
        while True:
            try:
                if seq.cache is None:
                    seq.cache = self.cache.allocate()
                self.cache.reserve(seq.cache, target)
                return True
            except CacheFull:
                if not self.retained:
                    return False
                _, victim = self.retained.popitem(last=False)
                self.cache.free(victim.cache)

    def _take_prefix(self, seq: Sequence) -> tuple[SeqCache | None, int]:
        best: tuple[int, int, int] | None = None  # (same conversation, length, key)
        conv = seq.request.conversation_id
        for key, entry in list(self.retained.items()):
            n = min(_common_prefix(entry.tokens, seq.tokens), seq.prompt_len - 1)
            same = int(conv is not None and entry.conversation_id == conv)
            if n <= 0 or not self.cache.reusable(entry.cache, n):
                if same:  # superseded by this turn and unusable: free it now
                    del self.retained[key]
                    self.cache.free(entry.cache)
                continue
            if best is None or (same, n) > best[:2]:
                best = (same, n, key)
        if best is None:
            return None, 0
        entry = self.retained.pop(best[2])
        self.cache.truncate(entry.cache, best[1])
        log.debug("scheduler.prefix_reuse", request_id=seq.request_id, reused=best[1])
        return entry.cache, best[1]

    # -- update -----------------------------------------------------------------------------

    def update(self, seq: Sequence, token: int) -> list[Output]:
        """Record ``seq``'s new token; finish it on a stop token or at its length limit."""
        seq.tokens.append(token)
        out: list[Output] = [(seq.request_id, TokenDelta((token,)))]
        if token in seq.request.stop_tokens:
            out.append((seq.request_id, self._finish(seq, FinishReason.STOP)))
        elif len(seq.completion) >= seq.max_tokens:
            out.append((seq.request_id, self._finish(seq, FinishReason.LENGTH)))
        return out

    def _finish(self, seq: Sequence, reason: FinishReason) -> Finished:
        self.running.remove(seq)
        assert seq.cache is not None
        cached = seq.tokens[: seq.cache.length]
        self.cache.truncate(seq.cache, seq.cache.length)  # give back the unused reservation
        if self.max_retained == 0:
            self.cache.free(seq.cache)
            return self._finished(seq, reason)
        while len(self.retained) >= self.max_retained:
            self.cache.free(self.retained.popitem(last=False)[1].cache)
        self._retained_ids += 1
        self.retained[self._retained_ids] = _Retained(
            seq.request.conversation_id, cached, seq.cache
        )
        return self._finished(seq, reason)

    def _finished(self, seq: Sequence, reason: FinishReason) -> Finished:
        return Finished(
            reason=reason,
            prompt_tokens=seq.prompt_len,
            completion_tokens=len(seq.completion),
            reused_tokens=seq.reused,
        )

    def abort_all(self) -> list[Output]:
        ids = [s.request_id for s in (*self.waiting, *self.running)]
        return [out for rid in ids if (out := self.abort(rid)) is not None]
