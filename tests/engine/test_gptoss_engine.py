"""GptOssEngine through the Engine protocol: concurrency, stops, limits, cancellation."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import anyio  # noqa: E402
from gptoss_helpers import greedy, make_core, run_core  # noqa: E402

from agent.engine.base import (  # noqa: E402
    Engine,
    EngineEvent,
    EngineRequest,
    Finished,
    FinishReason,
    SamplingParams,
    TokenDelta,
)
from agent.engine.gptoss import GptOssEngine  # noqa: E402
from agent.errors import EngineError  # noqa: E402

Checkpoints = Callable[..., Path]


def engine(path: Path, **options: object) -> GptOssEngine:
    kwargs: dict[str, object] = {"max_batch": 2, "max_context": 128, "prefill_chunk": 16}
    return GptOssEngine.from_checkpoint(path, dtype=torch.float32, **(kwargs | options))  # type: ignore[arg-type]


async def collect(eng: GptOssEngine, request: EngineRequest) -> tuple[list[int], Finished]:
    tokens: list[int] = []
    events: list[EngineEvent] = []
    async for event in eng.generate(request):
        events.append(event)
        if isinstance(event, TokenDelta):
            tokens.extend(event.token_ids)
    assert isinstance(events[-1], Finished) and sum(isinstance(e, Finished) for e in events) == 1
    return tokens, events[-1]


def test_concurrent_requests_match_the_core(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "hf")
    requests = [greedy(range(i, i + 5 + 3 * i), max_tokens=6 + i) for i in range(5)]
    expected = run_core(make_core(path, max_batch=1), requests)
    results: dict[int, tuple[list[int], Finished]] = {}

    async def main() -> None:
        async with engine(path) as eng:  # max_batch=2: the rest wait and join later
            assert isinstance(eng, Engine)

            async def one(i: int) -> None:
                results[i] = await collect(eng, requests[i])

            async with anyio.create_task_group() as tg:
                for i in range(len(requests)):
                    tg.start_soon(one, i)

    anyio.run(main)
    for i, (tokens, done) in enumerate(expected):
        assert results[i][0] == tokens
        assert results[i][1].reason is FinishReason.LENGTH == done.reason
        assert results[i][1].completion_tokens == 6 + i
        assert results[i][1].prompt_tokens == len(requests[i].prompt_tokens)


def test_stop_token_is_the_last_token(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "hf")
    prompt = list(range(10, 30))
    [(free_run, _)] = run_core(make_core(path), [greedy(prompt, max_tokens=10)])
    stop = free_run[4]
    cut = free_run.index(stop) + 1

    async def main() -> tuple[list[int], Finished]:
        async with engine(path) as eng:
            request = EngineRequest(
                prompt, frozenset({stop, 100_000}), SamplingParams(temperature=0)
            )
            return await collect(eng, request)

    tokens, done = anyio.run(main)
    assert tokens == free_run[:cut] and tokens[-1] == stop
    assert done.reason is FinishReason.STOP and done.completion_tokens == cut


def test_closing_the_iterator_aborts_the_request(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "hf")

    async def main() -> Finished:
        async with engine(path, max_batch=1) as eng:
            async with aclosing(eng.generate(greedy(range(8), max_tokens=100))) as stream:
                seen = 0
                async for _ in stream:
                    seen += 1
                    if seen == 3:
                        break
            # The only batch slot must come free, or this would wait behind 100 tokens.
            with anyio.fail_after(30):
                _, done = await collect(eng, greedy(range(8), max_tokens=2))
            with anyio.fail_after(10):
                while eng._core.has_work:  # the aborted request left the scheduler
                    await anyio.sleep(0.01)
            return done

    assert anyio.run(main).reason is FinishReason.LENGTH


def test_cancel_scope_aborts_and_frees_the_slot(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "hf")

    async def main() -> Finished:
        async with engine(path, max_batch=1) as eng:
            got = 0
            with anyio.CancelScope() as scope:
                async for _ in eng.generate(greedy(range(8), max_tokens=100)):
                    got += 1
                    if got == 3:
                        scope.cancel()
            assert scope.cancelled_caught
            with anyio.fail_after(30):  # would need ~100 steps if the first request still ran
                _, done = await collect(eng, greedy(range(8), max_tokens=2))
            with anyio.fail_after(10):
                while eng._core.has_work:
                    await anyio.sleep(0.01)
            return done

    assert anyio.run(main).reason is FinishReason.LENGTH


def test_aclose_ends_running_requests_with_abort(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "hf")

    async def main() -> Finished:
        eng = engine(path)
        finished: list[Finished] = []

        async def consume() -> None:
            async for event in eng.generate(greedy(range(8), max_tokens=100)):
                if isinstance(event, Finished):
                    finished.append(event)
                else:
                    await eng.aclose()

        with anyio.fail_after(30):
            await consume()
        with pytest.raises(EngineError, match="closed"):
            await collect(eng, greedy(range(8)))
        return finished[0]

    done = anyio.run(main)
    assert done.reason is FinishReason.ABORT and done.completion_tokens < 100


def test_seeded_sampling_is_reproducible(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "original")

    def request(seed: int) -> EngineRequest:
        return EngineRequest(
            range(12), sampling=SamplingParams(temperature=1.0, top_p=0.9, max_tokens=16, seed=seed)
        )

    async def main() -> list[list[int]]:
        async with engine(path, max_batch=4) as eng:
            out: list[list[int]] = [[], [], []]

            async def one(i: int, seed: int) -> None:
                out[i] = (await collect(eng, request(seed)))[0]

            async with anyio.create_task_group() as tg:
                for i, seed in enumerate((1, 1, 2)):
                    tg.start_soon(one, i, seed)
            return out

    a, b, c = anyio.run(main)
    assert a == b and a != c


def test_impossible_requests_raise_engine_error(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "hf")

    async def main() -> None:
        async with engine(path) as eng:
            for request, match in [
                (greedy([]), "empty"),
                (greedy(range(128)), "max_context"),
                (greedy([0, 10**6]), "vocabulary"),
            ]:
                with pytest.raises(EngineError, match=match):
                    await collect(eng, request)

    anyio.run(main)


def test_a_failed_step_raises_engine_error_and_the_engine_goes_on(checkpoints: Checkpoints) -> None:
    path = checkpoints("tiny", "hf")

    async def main() -> Finished:
        async with engine(path) as eng:
            real_step = eng._core.step

            def broken() -> list[object]:
                eng._core.step = real_step  # type: ignore[method-assign]
                raise RuntimeError("CUDA error: an illegal memory access")

            eng._core.step = broken  # type: ignore[method-assign]
            with pytest.raises(EngineError, match="illegal memory access"):
                await collect(eng, greedy(range(8)))
            return (await collect(eng, greedy(range(8), max_tokens=3)))[1]

    assert anyio.run(main).completion_tokens == 3


@pytest.mark.parametrize("run_ahead", [False, True])
def test_new_request_joins_the_running_batch_at_the_next_step(checkpoints: Checkpoints, run_ahead: bool) -> None:
    core = make_core(checkpoints("tiny", "hf"), max_batch=4, prefill_chunk=16, run_ahead=run_ahead)
    a = core.add(greedy(range(5), max_tokens=20))
    for _ in range(3):
        core.step()
    b = core.add(greedy(range(40, 50), max_tokens=20))
    if run_ahead:  # the step launched ahead of the last one lands first
        assert [rid for rid, _ in core.step()] == [a]
    ids = [rid for rid, _ in core.step()]
    assert ids == [b, a]  # b's prompt read and first token sampled in the same step as a's decode
    while core.has_work:
        core.step()
    assert not core.scheduler.running and not core.scheduler.waiting
