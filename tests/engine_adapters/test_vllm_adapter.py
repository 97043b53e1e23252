"""VllmEngine against a stand-in ``vllm`` module that follows vLLM's documented async API.

The stand-in is injected as ``sys.modules["vllm"]`` (and ``vllm.sampling_params``); it keeps
vLLM's contracts: token-id prompts as ``{"prompt_token_ids": [...]}``, DELTA outputs, stop
tokens included in ``token_ids`` with ``stop_reason`` set, ``num_cached_tokens`` for prefix
hits in 16-token blocks, ``abort(request_id)``.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from agent.engine.base import EngineRequest, Finished, FinishReason, SamplingParams, TokenDelta
from agent.errors import EngineError, UserError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class FakeSamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None
    stop_token_ids: list[int] = field(default_factory=list)
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    detokenize: bool = True


@dataclass
class AsyncEngineArgs:
    model: str
    enable_prefix_caching: bool | None = None
    max_model_len: int | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: None
    outputs: list[CompletionOutput]
    finished: bool
    num_cached_tokens: int | None = None


class FakeAsyncLLM:
    """Next token = (previous * 7 + 3) % 1000; two tokens per step, like a busy batch."""

    instances: list[FakeAsyncLLM] = []

    def __init__(self, args: AsyncEngineArgs) -> None:
        self.args = args
        self.seen: list[list[int]] = []
        self.requests: list[tuple[Any, FakeSamplingParams, str]] = []
        self.aborted: list[str] = []
        self.running: set[str] = set()
        self.fail_with: Exception | None = None
        self.hide_stop = False  # report the stop token only as stop_reason
        self.shut_down = False
        FakeAsyncLLM.instances.append(self)

    @classmethod
    def from_engine_args(cls, args: AsyncEngineArgs) -> FakeAsyncLLM:
        return cls(args)

    def _cached(self, ids: list[int]) -> int:
        best = 0
        for old in self.seen:
            n = 0
            while n < min(len(old), len(ids) - 1) and old[n] == ids[n]:
                n += 1
            best = max(best, n // 16 * 16)
        return best

    async def generate(self, prompt: dict[str, list[int]], params: FakeSamplingParams,
                       request_id: str) -> AsyncIterator[RequestOutput]:
        assert set(prompt) == {"prompt_token_ids"}
        assert params.output_kind is RequestOutputKind.DELTA
        ids = list(prompt["prompt_token_ids"])
        self.requests.append((prompt, params, request_id))
        cached = self._cached(ids)
        self.seen.append(ids)
        self.running.add(request_id)
        out: list[int] = []
        try:
            while True:
                if self.fail_with is not None:
                    raise self.fail_with
                step: list[int] = []
                reason: str | None = None
                stop: int | None = None
                for _ in range(2):
                    token = ((out[-1] if out else ids[-1]) * 7 + 3) % 1000
                    out.append(token)
                    step.append(token)
                    if token in params.stop_token_ids:
                        reason, stop = "stop", token
                        if self.hide_stop:
                            step.pop()
                        break
                    if len(out) >= (params.max_tokens or 16):
                        reason = "length"
                        break
                await anyio.sleep(0)
                yield RequestOutput(request_id, None, ids, None,
                                    [CompletionOutput(0, "", step, None, None, reason, stop)],
                                    reason is not None, cached)
                if reason is not None:
                    return
        finally:
            self.running.discard(request_id)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)
        self.running.discard(request_id)

    def shutdown(self) -> None:
        self.shut_down = True


def expected(prompt: list[int], n: int) -> list[int]:
    out, last = [], prompt[-1]
    for _ in range(n):
        last = (last * 7 + 3) % 1000
        out.append(last)
    return out


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    vllm = types.ModuleType("vllm")
    sp = types.ModuleType("vllm.sampling_params")
    sp.RequestOutputKind = RequestOutputKind  # type: ignore[attr-defined]
    sp.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    vllm.sampling_params = sp  # type: ignore[attr-defined]
    vllm.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    vllm.AsyncEngineArgs = AsyncEngineArgs  # type: ignore[attr-defined]
    vllm.AsyncLLMEngine = FakeAsyncLLM  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    FakeAsyncLLM.instances.clear()
    return vllm


async def run(engine: Any, request: EngineRequest) -> tuple[list[int], Finished, int]:
    tokens: list[int] = []
    deltas = 0
    async for event in engine.generate(request):
        if isinstance(event, Finished):
            return tokens, event, deltas
        assert isinstance(event, TokenDelta)
        deltas += 1
        tokens.extend(event.token_ids)
    raise AssertionError("no Finished")


def _engine(**kw: Any) -> Any:
    from agent.engine.vllm import VllmEngine

    return VllmEngine("openai/gpt-oss-20b", max_model_len=8192, **kw)


async def test_streams_token_ids_with_sampling_settings(fake_vllm: types.ModuleType) -> None:
    engine = _engine()
    fake = FakeAsyncLLM.instances[0]
    assert fake.args == AsyncEngineArgs("openai/gpt-oss-20b", True, 8192)
    req = EngineRequest([5, 6, 7], sampling=SamplingParams(temperature=0.3, top_p=0.9,
                                                           max_tokens=5, seed=11))
    tokens, finished, deltas = await run(engine, req)
    assert tokens == expected([7], 5) and deltas == 3
    assert finished == Finished(FinishReason.LENGTH, 3, 5, 0)
    _, params, _ = fake.requests[0]
    assert (params.temperature, params.top_p, params.max_tokens, params.seed) == (0.3, 0.9, 5, 11)
    assert params.detokenize is False
    await engine.aclose()
    assert fake.shut_down


async def test_stop_token_is_last_and_reason_stop(fake_vllm: types.ModuleType) -> None:
    engine = _engine()
    stop = expected([7], 4)[-1]
    req = EngineRequest([7], stop_tokens=frozenset({stop, 999_999}))
    tokens, finished, _ = await run(engine, req)
    assert tokens == expected([7], 4) and finished.reason is FinishReason.STOP
    assert FakeAsyncLLM.instances[0].requests[0][1].stop_token_ids == sorted({stop, 999_999})
    FakeAsyncLLM.instances[0].hide_stop = True  # reported only as stop_reason: still yielded
    tokens, finished, _ = await run(engine, req)
    assert tokens == expected([7], 4) and finished.completion_tokens == 4


async def test_prefix_cache_hits_are_reused_tokens(fake_vllm: types.ModuleType) -> None:
    engine = _engine()
    prompt = list(range(100, 140))
    _, first, _ = await run(engine, EngineRequest(prompt, sampling=SamplingParams(max_tokens=2)))
    _, second, _ = await run(engine, EngineRequest(prompt + [1, 2],
                                                   sampling=SamplingParams(max_tokens=2)))
    assert (first.reused_tokens, second.reused_tokens) == (0, 32)


async def test_cancellation_aborts_the_request(fake_vllm: types.ModuleType) -> None:
    engine = _engine()
    fake = FakeAsyncLLM.instances[0]
    req = EngineRequest([3], sampling=SamplingParams(max_tokens=1000))
    with anyio.move_on_after(0.05):  # cancelled while the consumer waits, iterator closed
        async with contextlib.aclosing(engine.generate(req)) as events:
            async for _ in events:
                await anyio.sleep(1)
    assert fake.aborted == [fake.requests[0][2]] and not fake.running
    agen = engine.generate(req)
    await anext(agen)
    await agen.aclose()
    assert fake.aborted[-1] == fake.requests[1][2] and not fake.running


async def test_vllm_failures_become_engine_errors(fake_vllm: types.ModuleType) -> None:
    engine = _engine()
    FakeAsyncLLM.instances[0].fail_with = RuntimeError("EngineDeadError: CUDA OOM")
    with pytest.raises(EngineError, match="CUDA OOM"):
        await run(engine, EngineRequest([1]))
    await engine.aclose()
    with pytest.raises(EngineError, match="closed"):
        await run(engine, EngineRequest([1]))


def test_missing_vllm_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(UserError, match="oss-agent\\[vllm\\]"):
        _engine()
