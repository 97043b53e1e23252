"""``VllmEngine``: the engine protocol over vLLM's async engine, in this process.

Written for vLLM 0.10.1 - 0.11.x (the V1 engine: ``vllm.AsyncLLMEngine`` is
``vllm.v1.engine.async_llm.AsyncLLM``), against its documented API only:

- ``AsyncLLMEngine.from_engine_args(AsyncEngineArgs(model=..., **engine_args))``
- ``engine.generate({"prompt_token_ids": ids}, SamplingParams(...), request_id)``, an async
  iterator of ``RequestOutput`` (``outputs[0].token_ids``, ``.finish_reason``, ``.stop_reason``,
  ``.finished``, ``.num_cached_tokens``)
- ``SamplingParams(temperature, top_p, max_tokens, seed, stop_token_ids,
  output_kind=RequestOutputKind.DELTA, detokenize=False)``: only the new token ids of each step,
  no text (the agent decodes Harmony itself)
- ``await engine.abort(request_id)``; ``engine.shutdown()``

Prefix caching is vLLM's own (``enable_prefix_caching``, on by default here); its hits come back
as ``num_cached_tokens`` and are reported as ``Finished.reused_tokens``. vLLM needs a GPU: install
the ``vllm`` extra. Example::

    engine = VllmEngine("openai/gpt-oss-20b", gpu_memory_utilization=0.85)
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog

from agent.engine.base import EngineEvent, EngineRequest, Finished, FinishReason, TokenDelta
from agent.errors import EngineError, UserError

log = structlog.get_logger(__name__)

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "abort": FinishReason.ABORT}


def _import_vllm() -> tuple[Any, Any]:
    try:
        return importlib.import_module("vllm"), importlib.import_module("vllm.sampling_params")
    except ModuleNotFoundError as exc:
        raise UserError("the vllm engine needs vLLM (and a GPU): pip install 'oss-agent[vllm]'"
                        ) from exc


class VllmEngine:
    """gpt-oss on vLLM's async engine in this process.

    Args:
        model: a Hugging Face id or local path (e.g. ``openai/gpt-oss-20b``).
        **engine_args: passed to ``vllm.AsyncEngineArgs`` (``tensor_parallel_size``,
            ``max_model_len``, ``gpu_memory_utilization``...).

    Raises:
        UserError: vLLM is not installed.
        EngineError (from :meth:`generate`): vLLM failed (engine dead, request rejected).
    """

    def __init__(self, model: str, **engine_args: Any) -> None:
        vllm, sampling_params = _import_vllm()
        self._vllm = vllm
        self._output_kind = sampling_params.RequestOutputKind.DELTA
        engine_args.setdefault("enable_prefix_caching", True)
        self.model = model
        self._engine = vllm.AsyncLLMEngine.from_engine_args(
            vllm.AsyncEngineArgs(model=model, **engine_args))
        self._closed = False

    async def __aenter__(self) -> VllmEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _params(self, request: EngineRequest) -> Any:
        s = request.sampling
        return self._vllm.SamplingParams(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
            stop_token_ids=sorted(request.stop_tokens), output_kind=self._output_kind,
            detokenize=False,
        )

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        if self._closed:
            raise EngineError("the vLLM engine is closed")
        request_id = f"oss-agent-{uuid.uuid4().hex}"
        stream = self._engine.generate({"prompt_token_ids": list(request.prompt_tokens)},
                                       self._params(request), request_id)
        count, last, done = 0, None, False
        try:
            while not done:
                try:  # the one boundary where vLLM's exceptions become EngineError
                    output = await anext(stream)
                except StopAsyncIteration:
                    raise EngineError(f"vLLM ended request {request_id} without finishing it"
                                      ) from None
                except Exception as exc:
                    raise EngineError(f"vLLM failed: {type(exc).__name__}: {exc}") from exc
                completion = output.outputs[0]
                ids = tuple(completion.token_ids)
                if ids:
                    count, last = count + len(ids), ids[-1]
                    yield TokenDelta(ids)
                done = bool(output.finished)
            reason = _FINISH.get(completion.finish_reason or "stop", FinishReason.STOP)
            stop = completion.stop_reason
            if reason is FinishReason.STOP and isinstance(stop, int) and stop != last \
                    and stop in request.stop_tokens:
                count += 1  # a stop token reported but not streamed: the parser needs it
                yield TokenDelta((stop,))
            yield Finished(reason, len(request.prompt_tokens), count,
                           int(getattr(output, "num_cached_tokens", None) or 0))
        finally:
            if not done:  # cancelled or closed early: free vLLM's slot now
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
                    await self._engine.abort(request_id)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        shutdown = getattr(self._engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
        log.info("vllm_engine.closed", model=self.model)
