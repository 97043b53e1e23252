"""``Agent``: the configuration of an agent, and the entry points that run it.

    agent = Agent(engine, [BrowserToolkit()], tools=[get_weather], policy=Policy.from_name("default"))
    async with agent:                      # starts shared toolkit resources once
        result = await agent.run("What's the weather in Paris?")

An Agent holds no per-run state: every ``run``/``stream`` builds its own transcript, policy state
and toolkit sessions, so runs may go concurrently on one Agent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self

import anyio
import openai_harmony as oh
import structlog

from agent.engine.base import Engine, SamplingParams
from agent.errors import UserError
from agent.events import (
    Event,
    FormatError,
    MessageDone,
    PolicyChecked,
    RunFinished,
    RunResult,
    StopReason,
    ToolFinished,
    ToolStarted,
)
from agent.harmony.codec import HarmonyCodec, SystemSettings
from agent.harmony.transcript import Transcript
from agent.loop import run_loop
from agent.state import Emit, Route, RunDeps, RunLimits, RunState
from policies.config import Policy
from policies.run import Approver, RunPolicy
from toolkits.base import RunContext, ToolCall, Toolkit, ToolNamespace, ToolSession
from toolkits.functions import FunctionToolkit

log = structlog.get_logger(__name__)


def _toolkits_from(tools: Iterable[Any]) -> list[Toolkit]:
    loose: list[Callable[..., Any]] = []
    kits: list[Toolkit] = []
    for item in tools:
        if isinstance(item, Toolkit):
            kits.append(item)
        elif inspect.isfunction(item) or inspect.ismethod(item):
            loose.append(item)
        elif inspect.isclass(item):
            raise UserError(f"pass an instance of {item.__name__}, not the class, in tools=")
        else:
            kits.append(FunctionToolkit.from_object(item))
    if loose:
        kits.insert(0, FunctionToolkit.from_functions(loose))
    return kits


@asynccontextmanager
async def _session(session: ToolSession) -> AsyncIterator[ToolSession]:
    await session.start()
    try:
        yield session
    finally:  # closing must finish even when the run was cancelled
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await session.aclose()


def _spawn(coro: Coroutine[Any, Any, RunResult]) -> asyncio.Task[RunResult]:
    try:
        return asyncio.get_running_loop().create_task(coro)
    except RuntimeError:
        coro.close()
        raise UserError("Agent.stream needs the asyncio backend (use Agent.run on trio)") from None


def _seed(folder: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = PurePosixPath(rel)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise UserError(f"files: {rel!r} must be a relative path inside the run's folder")
        target = folder.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def _redacting(emit: Emit, policy: RunPolicy) -> Emit:
    """Events carry the model's arguments and tool output: secrets are replaced before anyone
    sees them. Token deltas stream as they come (a secret can span deltas; the complete
    message follows in MessageDone, redacted)."""

    redact = policy.redactor.redact

    def call(c: ToolCall) -> ToolCall:
        return dataclasses.replace(c, arguments=redact(c.arguments))

    async def send(event: Event) -> None:
        # Only the fields that carry model or tool text (a generic walk cost ~0.5 ms a run).
        match event:
            case ToolStarted():
                event = ToolStarted(call(event.call))
            case ToolFinished():  # the output was redacted before the model saw it
                event = ToolFinished(dataclasses.replace(event.record, call=call(event.record.call)))
            case PolicyChecked():
                event = PolicyChecked(call(event.call), event.decision)
            case MessageDone():
                event = MessageDone(dataclasses.replace(event.message,
                                                        text=redact(event.message.text)))
            case FormatError():
                event = FormatError(redact(event.reason), redact(event.raw_text))
        await emit(event)

    return send


class Agent:
    """An engine, toolkits, a policy and the settings of the messages that open a run.

    Enter it (``async with agent:``) to start the toolkits' shared resources once for many runs;
    toolkits that own background tasks (the python sandbox pool) need that when runs go
    concurrently, since their resources must be closed by the task that started them."""

    def __init__(
        self,
        engine: Engine,
        toolkits: Sequence[Toolkit] = (),
        *,
        tools: Iterable[Any] = (),
        policy: Policy | None = None,
        approver: Approver | None = None,
        instructions: str | None = None,
        system: SystemSettings | None = None,
        limits: RunLimits | None = None,
        sampling: SamplingParams | None = None,
        files_root: Path | None = None,
        files: Mapping[str, str | bytes] | None = None,
        codec: HarmonyCodec | None = None,
    ) -> None:
        self.engine = engine
        self.toolkits: list[Toolkit] = [*toolkits, *_toolkits_from(tools)]
        self.policy = policy or Policy()
        self.approver = approver
        self.instructions = instructions
        self.system = system or SystemSettings()
        self.limits = limits or RunLimits()
        self.sampling = sampling or SamplingParams()
        self.files_root = files_root or Path(tempfile.gettempdir()) / "oss-agent-runs"
        self.files = dict(files or {})  # every run starts with these in its files folder
        self.codec = codec or HarmonyCodec()
        self._stack: AsyncExitStack | None = None
        self._users = 0
        self._explicit = False
        self._lock = anyio.Lock()
        self._opening_cache: tuple[object, list[oh.Message], list[int]] | None = None

    # -- shared toolkit resources --------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self._acquire()
        self._explicit = True
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._explicit = False
        await self._release()

    async def _acquire(self) -> None:
        async with self._lock:
            if self._users == 0:
                stack = AsyncExitStack()
                try:
                    for kit in self.toolkits:
                        await stack.enter_async_context(kit)
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack = stack
            self._users += 1

    async def _release(self) -> None:
        # No lock and no await before the count drops: a cancelled run still gives back its use.
        self._users -= 1
        if self._users == 0 and self._stack is not None:
            # Not under a cancel scope of ours: a toolkit may hold a task group (the sandbox
            # pool) that must be exited from the scope it was entered in. Toolkits shield their
            # own cleanup.
            stack, self._stack = self._stack, None
            await stack.aclose()

    # -- what the model sees first ------------------------------------------------------
    def namespaces(self, policy: RunPolicy | None = None) -> list[ToolNamespace]:
        return [kit.namespace(policy) for kit in self.toolkits]

    def opening(self, task: str | None, policy: RunPolicy | None = None) -> list[oh.Message]:
        """System and developer messages (and the user's task, when given)."""
        spaces = self.namespaces(policy)
        messages = [self.codec.system_message(self.system, spaces)]
        developer = self.codec.developer_message(self.instructions, spaces)
        if developer is not None:
            messages.append(developer)
        if task is not None:
            messages.append(oh.Message.from_role_and_content(oh.Role.USER, task))
        return messages

    def _transcript(self, task: str | None, policy: RunPolicy) -> Transcript:
        """A new run's transcript; the system and developer tokens are rendered once per Agent
        (and again only when what they say changes), since every run starts with them."""
        spaces = self.namespaces(policy)
        key = (repr(spaces), self.instructions, self.system, dt.date.today())
        if self._opening_cache is None or self._opening_cache[0] != key:
            opening = self.opening(None, policy)
            self._opening_cache = (key, opening, self.codec.render_conversation(opening))
        _, opening, tokens = self._opening_cache
        transcript = Transcript.from_rendered(self.codec, opening, tokens)
        if task is not None:
            transcript.add_user(task)
        return transcript

    def _routes(self, sessions: dict[int, ToolSession], policy: RunPolicy) -> dict[str, Route]:
        routes: dict[str, Route] = {}
        for kit in self.toolkits:
            ns = kit.namespace(policy)
            keys = [f"functions.{t.name}" for t in ns.tools] if ns.name == "functions" else [ns.name]
            for key in keys:
                if key in routes:
                    raise UserError(f"two toolkits both answer to {key!r}; rename one of them")
                routes[key] = Route(sessions[id(kit)], ns.name)
        return routes

    # -- running ------------------------------------------------------------------------
    async def run(self, task: str, *, run_id: str | None = None,
                  transcript: Transcript | None = None,
                  files: Mapping[str, str | bytes] | None = None) -> RunResult:
        """Run the task to its end and return the result.

        ``files`` (relative path -> content) are written into the run's files folder first,
        next to the Agent's own ``files``; the python sandbox sees them under ``/mnt/data``.

        Raises:
            AgentRunError: the engine or a sandbox failed.
            UserError: a file path is absolute or leaves the files folder.
        """
        async def ignore(event: Event) -> None:
            return None

        return await self._execute(task, ignore, run_id, transcript, files)

    async def stream(self, task: str, *, run_id: str | None = None,
                     transcript: Transcript | None = None,
                     files: Mapping[str, str | bytes] | None = None) -> AsyncIterator[Event]:
        """Run the task, yielding events as they happen; the last one is RunFinished.

        Stopping the iteration early (``break``) cancels the run and closes its sessions.

        Raises:
            AgentRunError: the engine or a sandbox failed (after the events before it).
        """
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=256)

        async def produce() -> RunResult:
            async with send:
                return await self._execute(task, send.send, run_id, transcript, files)

        # The run lives in its own task rather than in a task group of this generator: a
        # consumer that breaks out of ``async for`` leaves the generator to be closed later,
        # from another task, where a task group's cancel scope could not be exited.
        producer = _spawn(produce())
        try:
            async with receive:
                async for event in receive:
                    yield event
            await producer  # raises the run's failure, as run() would
        finally:
            if not producer.done():
                producer.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([producer])
            if producer.done() and not producer.cancelled():
                producer.exception()  # retrieved: asyncio must not report it as lost

    def run_sync(self, task: str) -> RunResult:
        """``run`` for code that is not async (scripts, notebooks without a loop)."""
        return anyio.run(self.run, task)

    async def _execute(self, task: str | None, emit: Emit, run_id: str | None,
                       transcript: Transcript | None,
                       files: Mapping[str, str | bytes] | None = None) -> RunResult:
        run_id = run_id or uuid.uuid4().hex[:16]
        policy = RunPolicy(self.policy, self.approver)
        files_dir = self.files_root / run_id
        files_dir.mkdir(parents=True, exist_ok=True)
        _seed(files_dir, {**self.files, **(files or {})})
        ctx = RunContext(run_id, files_dir, policy)
        emit = _redacting(emit, policy)
        if transcript is None:
            transcript = self._transcript(task, policy)
        elif task is not None:
            transcript.add_user(task)
        state = RunState(transcript)
        await self._acquire()
        try:
            async with AsyncExitStack() as stack:
                sessions = {id(kit): await stack.enter_async_context(_session(kit.session(ctx)))
                            for kit in self.toolkits}
                deps = RunDeps(self.engine, self.codec, policy, ctx, self.limits, self.sampling,
                               self._routes(sessions, policy), emit)
                with anyio.move_on_after(self.limits.deadline_s) as scope:
                    reason = await run_loop(deps, state)
                if scope.cancelled_caught:
                    reason = StopReason.DEADLINE
        finally:
            await self._release()
        result = RunResult(run_id, reason, state.final_answer, transcript.messages,
                           state.tool_calls, state.usage, files_dir, state.elapsed())
        log.info("run_finished", run_id=run_id, stop_reason=reason.value, turns=state.turn,
                 tool_calls=len(state.tool_calls), completion_tokens=state.completion_tokens,
                 duration_s=round(result.duration_s, 3), started=time.time() - result.duration_s)
        await emit(RunFinished(result))
        return result
