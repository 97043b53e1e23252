"""``GptOssEngine``: the bundled gpt-oss engine behind the async :class:`~agent.engine.base.Engine`.

One worker thread owns the model, the KV cache and the scheduler and runs
:meth:`EngineCore.step` while there is work. Requests cross into it through a thread-safe
inbox; events come back through one bounded anyio memory stream per request, delivered on the
requester's event loop (``call_soon_threadsafe`` on asyncio, without waiting for it; trio:
``anyio.from_thread.run_sync`` with that loop's token). Torch releases
the GIL in its kernels, so the event loop stays responsive during a step.

Example::

    async with GptOssEngine.from_checkpoint("gpt-oss-20b", device="cuda") as engine:
        async for event in engine.generate(EngineRequest(prompt_tokens=ids)):
            ...
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import structlog
import torch
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from agent.engine.base import EngineEvent, EngineRequest, Finished, TokenDelta
from agent.errors import EngineError

from .core import CoreOptions, EngineCore
from .scheduler import Output

log = structlog.get_logger(__name__)

_Item = EngineEvent | BaseException  # an exception item means: raise EngineError from it


@dataclass(frozen=True, slots=True)
class _Sink:
    send: MemoryObjectSendStream[_Item]
    token: Any  # the consumer's anyio EventLoopToken


@dataclass(frozen=True, slots=True)
class _Add:
    request_id: int
    request: EngineRequest
    sink: _Sink


@dataclass(frozen=True, slots=True)
class _Abort:
    request_id: int


class GptOssEngine:
    """The gpt-oss model running in this process (PyTorch; CPU or CUDA).

    Raises (from :meth:`generate`):
        EngineError: the engine is closed, the request can never fit (empty prompt, prompt at or
            past ``max_context``, token ids outside the vocabulary), or a step failed.
    """

    def __init__(self, core: EngineCore) -> None:
        self._core = core
        self._inbox: queue.SimpleQueue[_Add | _Abort | None] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._sinks: dict[int, _Sink] = {}  # worker thread only
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gptoss-engine", daemon=True)
        self._thread.start()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        max_batch: int = 8,
        max_context: int = 4096,
        prefill_chunk: int = 256,
        **options: Any,
    ) -> GptOssEngine:
        """Load a checkpoint (either layout). ``dtype`` defaults to bf16 on CUDA, fp32 on CPU.

        Raises:
            CheckpointError, ConfigError: the checkpoint is missing or malformed.
        """
        opts = CoreOptions(
            max_batch=max_batch, max_context=max_context, prefill_chunk=prefill_chunk, **options
        )
        return cls(EngineCore.from_checkpoint(path, device=device, dtype=dtype, options=opts))

    async def __aenter__(self) -> GptOssEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the async side ---------------------------------------------------------------------

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        if self._closed:
            raise EngineError("the engine is closed")
        self._core.validate(request)
        # Room for every event the request can produce, so the worker never blocks on it.
        send, receive = anyio.create_memory_object_stream[_Item](request.sampling.max_tokens + 2)
        rid = self._core.new_id()
        self._post(_Add(rid, request, _Sink(send, anyio.lowlevel.current_token())))
        finished = False
        held: _Item | None = None  # taken from the stream by the merge below, not yet yielded
        try:
            async with receive:
                while True:
                    if held is not None:
                        item, held = held, None
                    else:
                        try:
                            item = await receive.receive()
                        except anyio.EndOfStream:
                            break
                    if isinstance(item, BaseException):
                        finished = True  # the worker already dropped the request
                        raise EngineError(f"the gpt-oss engine failed: {item}") from item
                    if isinstance(item, TokenDelta):
                        item, held = _merge_queued(item, receive)
                    finished = isinstance(item, Finished)
                    yield item
                    if finished:
                        return
            raise EngineError("the engine closed before the request finished")
        finally:
            if not finished:  # cancelled or closed by the consumer: stop decoding it
                self._post(_Abort(rid))

    async def aclose(self) -> None:
        """Abort running requests (they end with ``FinishReason.ABORT``) and stop the worker."""
        if self._closed:
            return
        self._closed = True
        self._post(None)
        await anyio.to_thread.run_sync(self._thread.join)
        log.info("engine.closed")

    def _post(self, command: _Add | _Abort | None) -> None:
        self._inbox.put(command)
        self._wake.set()

    # -- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if not self._drain():
                break
            if not self._core.has_work:
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                outputs = self._core.step()
            except Exception as exc:  # noqa: BLE001 - every failure goes to the requests
                log.exception("engine.step_failed")
                self._fail_all(exc)
                continue
            self._deliver(outputs)
        self._drain()
        self._deliver(self._core.abort_all())

    def _drain(self) -> bool:
        """Apply every queued command; False once asked to stop.

        Requests queued behind the stop command are still registered, so that the final
        ``abort_all`` ends them with ABORT instead of leaving their consumers waiting.
        """
        keep_running = True
        while True:
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return keep_running
            if command is None:
                keep_running = False
            elif isinstance(command, _Add):
                self._sinks[command.request_id] = command.sink
                self._core.add(command.request, command.request_id)
            else:
                self._sinks.pop(command.request_id, None)
                self._core.abort(command.request_id)

    def _fail_all(self, exc: Exception) -> None:
        failed = [(rid, exc) for rid in self._sinks]
        self._core.abort_all()
        self._deliver(failed)

    def _deliver(self, outputs: list[Output] | list[tuple[int, Exception]]) -> None:
        by_loop: dict[Any, list[tuple[int, _Sink, _Item]]] = defaultdict(list)
        for rid, item in outputs:
            sink = self._sinks.get(rid)
            if sink is None:
                continue
            if isinstance(item, Finished | BaseException):
                del self._sinks[rid]
            by_loop[sink.token].append((rid, sink, item))
        for token, items in by_loop.items():
            loop = token.native_token
            if isinstance(loop, asyncio.AbstractEventLoop):
                # Fire and forget: the worker goes on to the next step while the loop delivers
                # (a blocking hand-off made every step wait for a busy server loop's turn).
                # The loop runs callbacks in order, so each request's events stay in order.
                try:
                    loop.call_soon_threadsafe(self._push_soon, items)
                    continue
                except RuntimeError:  # that event loop has ended: nobody is listening
                    gone = [rid for rid, _, _ in items]
            else:  # trio: its blocking hand-off
                try:
                    gone = anyio.from_thread.run_sync(_push, items, token=token)
                except RuntimeError:
                    gone = [rid for rid, _, _ in items]
            for rid in gone:
                if self._sinks.pop(rid, None) is not None:
                    self._core.abort(rid)

    def _push_soon(self, items: list[tuple[int, _Sink, _Item]]) -> None:
        """:func:`_push` on the consumer's loop; a consumer that went away is aborted through
        the inbox, as if its ``generate`` had been closed."""
        for rid in _push(items):
            self._post(_Abort(rid))


def _push(items: list[tuple[int, _Sink, _Item]]) -> list[int]:
    """Runs on the consumer's event loop; returns the ids whose consumer went away."""
    gone = []
    for rid, sink, item in items:
        try:
            sink.send.send_nowait(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            gone.append(rid)
            continue
        if isinstance(item, Finished | BaseException):
            sink.send.close()
    return gone


def _merge_queued(delta: TokenDelta, receive: MemoryObjectReceiveStream[_Item]
                  ) -> tuple[TokenDelta, _Item | None]:
    """``delta`` joined with the deltas already queued behind it, and the first other item.

    A consumer that fell behind (a busy server loop) then handles one event for several tokens
    instead of one per token: per-event costs (an SSE event, a socket write, the client's parse)
    shrink exactly when they are what holds it back. A consumer that keeps up sees one per step.
    """
    ids: list[int] | None = None
    while True:
        try:
            item = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            item = None
        if not isinstance(item, TokenDelta):
            return (delta if ids is None else TokenDelta(tuple(ids))), item
        if ids is None:
            ids = list(delta.token_ids)
        ids.extend(item.token_ids)
