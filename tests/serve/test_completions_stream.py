"""The streamed ``/v1/completions`` wire format and HttpEngine's connection reuse (loopback).

The server writes token deltas from byte templates (its hottest path): the events must be the
same JSON, field for field, that a plain encoding of the chunk gives, as vLLM streams it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.engine.base import EngineRequest, Finished, SamplingParams
from agent.engine.gptoss import GptOssEngine
from agent.engine.http import HttpEngine
from agent.harmony.codec import HarmonyCodec
from agent.serve import build_app, running, sse
from agent.serve.common import ServerState
from agent.serve.completions import _choice, _DeltaEvents

pytestmark = pytest.mark.anyio
CHOICE_KEYS = ["index", "text", "token_ids", "logprobs", "finish_reason", "stop_reason"]


class _Clients:
    """Records the client address of every HTTP request (one port per TCP connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.seen = app, list[Any]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(tuple(scope["client"]))
        await self.app(scope, receive, send)


@pytest.fixture
async def served(tiny_checkpoint: Path) -> AsyncIterator[tuple[str, _Clients]]:
    engine = GptOssEngine.from_checkpoint(tiny_checkpoint, dtype=torch.float32, max_batch=4,
                                          max_context=256)
    app = _Clients(build_app(engine, model_name="gpt-oss-tiny"))
    async with engine, running(app) as url:
        yield url, app


async def test_stream_events_are_vllm_chunks(served: tuple[str, _Clients]) -> None:
    url, _ = served
    body = {"prompt": [1, 2, 3, 4], "max_tokens": 6, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, "return_token_ids": True}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        whole = (await client.post("/v1/completions", json=body | {"stream": False})).json()
        events: list[Any] = []
        async with client.stream("POST", "/v1/completions", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data = line.removeprefix("data: ")
                    events.append(data if data == "[DONE]" else json.loads(data))
    assert events[-1] == "[DONE]"
    *deltas, last, usage = events[:-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 6
    assert last["choices"][0]["finish_reason"] == "length"
    for event in deltas:
        assert list(event) == ["id", "object", "created", "model", "choices"]
        assert event["object"] == "text_completion" and event["model"] == "gpt-oss-tiny"
        (choice,) = event["choices"]
        assert list(choice) == CHOICE_KEYS and choice["finish_reason"] is None
    assert len({e["id"] for e in events[:-1]}) == 1
    streamed = [t for e in deltas for t in e["choices"][0]["token_ids"]]
    assert streamed == whole["choices"][0]["token_ids"]


async def test_http_engine_reuses_its_connection(served: tuple[str, _Clients]) -> None:
    url, app = served
    request = EngineRequest((5, 6, 7), sampling=SamplingParams(temperature=0, max_tokens=4))
    async with HttpEngine(url + "/v1", timeout=30) as http:
        for _ in range(3):
            events = [e async for e in http.generate(request)]
            assert isinstance(events[-1], Finished)
    assert len(app.seen) == 4  # /v1/models, then three completions
    assert len(set(app.seen)) == 1, "every request opened a new connection"


def test_delta_template_equals_the_plain_encoding() -> None:
    state = ServerState(None, HarmonyCodec(), 'model "quoted" \\ é')  # type: ignore[arg-type]
    head = {"id": "cmpl-1", "object": "text_completion", "created": 5, "model": state.model_name}
    delta = _DeltaEvents(state, head)
    for ids in [(300,), (300,), (1, 2, 3), (200012,), (0xC3,), (10,), (9,)]:
        plain = sse.event(head | {"choices": [_choice(state, ids, None, frozenset())]})
        assert delta(ids) == plain


async def test_stream_interval_groups_tokens(tiny_checkpoint: Path) -> None:
    """With ``stream_interval=3`` the first token goes out alone, then groups of 3; the ids are
    the same as unstreamed, and HttpEngine reads the groups back as the same sequence."""
    engine = GptOssEngine.from_checkpoint(tiny_checkpoint, dtype=torch.float32, max_batch=4,
                                          max_context=256)
    body = {"prompt": [1, 2, 3, 4], "max_tokens": 8, "temperature": 0, "stream": True}
    async with engine, running(build_app(engine, model_name="gpt-oss-tiny",
                                         stream_interval=3)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            whole = (await client.post("/v1/completions", json=body | {"stream": False})).json()
            sizes, ids = [], []
            async with client.stream("POST", "/v1/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        got = json.loads(line[6:])["choices"][0]["token_ids"]
                        if got:
                            sizes.append(len(got))
                            ids.extend(got)
        async with HttpEngine(url + "/v1") as http:
            request = EngineRequest((1, 2, 3, 4), sampling=SamplingParams(temperature=0,
                                                                          max_tokens=8))
            read = [t async for e in http.generate(request) if not isinstance(e, Finished)
                    for t in e.token_ids]
    assert ids == whole["choices"][0]["token_ids"] == read
    assert sizes[0] == 1 and all(n <= 3 for n in sizes) and len(sizes) < len(ids)


@pytest.mark.parametrize(("interval", "groups"), [(3, [[1], [2, 3, 4], [5, 6, 7], [8, 9]]), (1, [[1], [2, 3], [4], [5, 6, 7, 8], [9]])])
async def test_stream_interval_splits_merged_deltas(interval: int, groups: list[list[int]]) -> None:
    """Engine events that carry several tokens (deltas merged while the consumer fell behind):
    with ``stream_interval=3`` the first token still goes out alone and no event carries more
    than 3; the rest waits for the end. At 1, each engine event stays one SSE event."""
    from agent.engine.base import FinishReason, TokenDelta
    from agent.serve.completions import _stream

    async def events() -> AsyncIterator[Any]:
        for ids in ((1,), (2, 3), (4,), (5, 6, 7, 8), (9,)):
            yield TokenDelta(ids)
        yield Finished(FinishReason.LENGTH, prompt_tokens=4, completion_tokens=9)

    state = ServerState(engine=None, codec=HarmonyCodec(), model_name="m", stream_interval=interval)  # type: ignore[arg-type]
    request = EngineRequest((1, 2, 3, 4), sampling=SamplingParams(max_tokens=9))
    sent = [json.loads(chunk[6:]) async for chunk in _stream(state, events(), request, {"id": "x"}, False)
            if chunk.startswith(b"data: {")]  # fmt: skip
    assert [c["choices"][0]["token_ids"] for c in sent if c["choices"][0].get("token_ids")] == groups
    assert sent[-1]["choices"][0]["finish_reason"] == "length"
