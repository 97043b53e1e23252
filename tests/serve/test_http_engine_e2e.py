"""HttpEngine against the server running the bundled engine (tiny random checkpoint, loopback).

Greedy decoding through HTTP must be token-for-token what the in-process engine produces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import torch

from agent.engine.base import Engine, EngineRequest, Finished, FinishReason, SamplingParams
from agent.engine.gptoss import GptOssEngine
from agent.engine.http import HttpEngine
from agent.serve import build_app, running

pytestmark = pytest.mark.anyio
PROMPTS = [(1, 2, 3, 4, 5), (7, 300, 9), tuple(range(40, 60))]


def greedy(prompt: tuple[int, ...], max_tokens: int = 8, **kw: object) -> EngineRequest:
    return EngineRequest(prompt, sampling=SamplingParams(temperature=0, max_tokens=max_tokens),
                         **kw)  # type: ignore[arg-type]


async def collect(engine: Engine, request: EngineRequest) -> tuple[list[int], Finished]:
    tokens: list[int] = []
    async for event in engine.generate(request):
        if isinstance(event, Finished):
            return tokens, event
        tokens.extend(event.token_ids)
    raise AssertionError("no Finished event")


@pytest.fixture
async def served(tiny_checkpoint: Path) -> AsyncIterator[tuple[GptOssEngine, HttpEngine]]:
    engine = GptOssEngine.from_checkpoint(tiny_checkpoint, dtype=torch.float32, max_batch=4,
                                          max_context=256)
    async with engine, running(build_app(engine, model_name="gpt-oss-tiny")) as url:
        async with HttpEngine(url + "/v1", timeout=30) as http:
            yield engine, http


async def test_greedy_matches_in_process(served: tuple[GptOssEngine, HttpEngine]) -> None:
    local, http = served
    for prompt in PROMPTS:
        want, _ = await collect(local, greedy(prompt))
        got, finished = await collect(http, greedy(prompt))
        assert got == want
        assert finished.reason is FinishReason.LENGTH
        assert (finished.prompt_tokens, finished.completion_tokens) == (len(prompt), 8)


async def test_concurrent_requests_batch(served: tuple[GptOssEngine, HttpEngine]) -> None:
    local, http = served
    want = [(await collect(local, greedy(p)))[0] for p in PROMPTS]
    got: dict[int, list[int]] = {}

    async def one(i: int) -> None:
        got[i] = (await collect(http, greedy(PROMPTS[i])))[0]

    async with anyio.create_task_group() as tg:
        for i in range(len(PROMPTS)):
            tg.start_soon(one, i)
    assert [got[i] for i in range(len(PROMPTS))] == want


async def test_stop_token_ends_with_it(served: tuple[GptOssEngine, HttpEngine]) -> None:
    local, http = served
    free, _ = await collect(local, greedy(PROMPTS[0]))
    stop = free[3]
    cut = free[: free.index(stop) + 1]
    got, finished = await collect(http, greedy(PROMPTS[0], stop_tokens=frozenset({stop})))
    assert got == cut and finished.reason is FinishReason.STOP


async def test_prefix_reuse_reported(served: tuple[GptOssEngine, HttpEngine]) -> None:
    _, http = served
    first, _ = await collect(http, greedy(PROMPTS[2], conversation_id="c1"))
    follow = (*PROMPTS[2], *first, 5, 6, 7)
    _, finished = await collect(http, greedy(follow, conversation_id="c1"))
    assert finished.reused_tokens >= len(PROMPTS[2])


async def test_cancel_mid_stream_frees_the_request(served: tuple[GptOssEngine, HttpEngine]) -> None:
    local, http = served
    with anyio.move_on_after(10):
        async for event in http.generate(greedy(PROMPTS[0], max_tokens=200)):
            assert not isinstance(event, Finished)
            break  # closing the generator closes the HTTP stream
    # The server sees the disconnect and aborts; the engine keeps serving others.
    with anyio.fail_after(20):
        got, _ = await collect(http, greedy(PROMPTS[1]))
        want, _ = await collect(local, greedy(PROMPTS[1]))
    assert got == want


async def test_engine_error_is_a_clear_error(served: tuple[GptOssEngine, HttpEngine]) -> None:
    from agent.engine.http import EngineHTTPError

    _, http = served
    with pytest.raises(EngineHTTPError, match="outside the vocabulary") as info:  # HTTP 500
        await collect(http, greedy((1, 100000)))
    assert info.value.status == 500
