"""EngineCore's run-ahead (the next decode step launched before this one's tokens are read):
the same tokens and events as stepping synchronously, whatever joins, stops or is aborted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from gptoss_helpers import greedy, make_core, run_core  # noqa: E402

from agent.engine.base import EngineRequest, Finished, FinishReason, SamplingParams  # noqa: E402
from agent.engine.gptoss import EngineCore  # noqa: E402
from agent.engine.gptoss.scheduler import Output  # noqa: E402

Checkpoints = Callable[..., Path]


def calls(
    core: EngineCore, script: dict[int, Callable[[EngineCore], list[Output]]]
) -> list[list[Output]]:
    """Every ``step()``'s outputs until the core is idle; ``script[i]`` runs before call ``i``
    (its outputs come first in that call's list)."""
    out: list[list[Output]] = []
    while core.has_work:
        before = script[len(out)](core) if len(out) in script else []
        out.append(before + core.step())
    return out


def tokens_of(out: list[list[Output]], rid: int) -> list[int]:
    """Request ``rid``'s tokens over every call's outputs."""
    return [
        t
        for o in out
        for r, e in o
        if r == rid and not isinstance(e, Finished)
        for t in e.token_ids
    ]


def test_run_ahead_gives_the_tokens_and_events_of_synchronous_steps(
    checkpoints: Checkpoints,
) -> None:
    """Five requests through two batch slots: greedy and seeded sampling, a stop token, limits
    of 1, 2 and 3 tokens (nothing to run ahead, or just one step), requests joining as others
    finish. Every request's tokens and Finished event match."""
    path = checkpoints("tiny", "hf")
    [(free, _)] = run_core(make_core(path, run_ahead=False), [greedy(range(10, 30), max_tokens=12)])
    stop = next(t for i, t in enumerate(free) if i >= 3 and t not in free[:i])

    def requests() -> list[EngineRequest]:
        sampled = SamplingParams(temperature=0.9, top_p=0.8, max_tokens=14, seed=3)
        return [
            EngineRequest(
                tuple(range(10, 30)),
                frozenset({stop}),
                SamplingParams(temperature=0, max_tokens=12),
            ),
            EngineRequest(tuple(range(50, 57)), sampling=sampled),
            greedy(range(3, 9), max_tokens=1),
            greedy(range(70, 90), max_tokens=2),
            greedy(range(5, 25), max_tokens=3),
        ]

    def counted(run_ahead: bool) -> tuple[list[tuple[list[int], Finished]], int]:
        core = make_core(path, max_batch=2, run_ahead=run_ahead)
        decode, steps = core.model.decode, []
        core.model.decode = lambda tokens, seqs, cache: (
            steps.append(len(seqs)) or decode(tokens, seqs, cache)
        )  # type: ignore[method-assign]
        return run_core(core, requests()), sum(steps)

    (sync, rows), (ahead, rows_ahead) = counted(False), counted(True)
    assert ahead == sync
    # No step is run ahead for a token past a request's max_tokens: at most the stop token's.
    assert rows <= rows_ahead <= rows + 1
    assert sync[0][1].reason is FinishReason.STOP and sync[0][0][-1] == stop
    assert [len(tokens) for tokens, _ in sync[2:]] == [1, 2, 3]
    assert len(set(sync[1][0])) > 1  # sampled, not stuck on one token


def test_a_step_runs_ahead_only_while_the_batch_stays_the_same(checkpoints: Checkpoints) -> None:
    """Call by call: a prompt being read launches nothing ahead; decoding alone launches the
    next step before returning; a request waiting for a free slot stops that. Each call still
    returns one token per decoding sequence."""
    core = make_core(checkpoints("tiny", "hf"), max_batch=2, prefill_chunk=16)
    a = core.add(greedy(range(5), max_tokens=6))
    out = [core.step()]  # a's prompt and first token
    assert core._flight is None
    out.append(core.step())  # a's second token, its third launched
    assert core._flight is not None and [rid for rid, _ in out[-1]] == [a]
    b = core.add(greedy(range(40, 60), max_tokens=4))
    out.append(core.step())  # lands a's third token, launches nothing (b waits for a slot)
    assert core._flight is None
    out += calls(core, {})
    assert [len(o) for o in out[:3]] == [1, 1, 1]
    assert (
        len(tokens_of(out, a)) == 6 and len(tokens_of(out, b)) == 4 and not core.scheduler.running
    )


@pytest.mark.parametrize("at_call", [2, 3, 5])
def test_aborting_with_a_step_in_flight(checkpoints: Checkpoints, at_call: int) -> None:
    """A request aborted while a step runs ahead for it ends with ABORT after the tokens it had;
    its batch-mate's tokens are unchanged, and every cache block and ring comes back."""
    path = checkpoints("tiny", "hf")

    def run(run_ahead: bool) -> tuple[list[list[Output]], EngineCore]:
        core = make_core(path, max_batch=2, max_retained=0, run_ahead=run_ahead)
        ids = [
            core.add(greedy(range(5), max_tokens=10)),
            core.add(greedy(range(30, 41), max_tokens=10)),
        ]
        return calls(core, {at_call: lambda c: c.abort(ids[0])}), core

    (sync, _), (ahead, core) = run(False), run(True)

    def finished(out: list[list[Output]], rid: int) -> Finished:
        [done] = [e for o in out for r, e in o if r == rid and isinstance(e, Finished)]
        return done

    for rid in (1, 2):
        assert tokens_of(ahead, rid) == tokens_of(sync, rid)
        assert finished(ahead, rid) == finished(sync, rid)
    assert finished(ahead, 1).reason is FinishReason.ABORT and len(tokens_of(ahead, 2)) == 10
    assert sorted(core.cache.free_blocks) == list(range(core.cache.num_blocks))
    assert len(core.cache.free_rings) == 2  # one per batch slot, none retained
