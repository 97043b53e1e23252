"""HttpEngine against a tiny loopback server that misbehaves on purpose (raw sockets).

Each test scripts the server's bytes: HTTP errors, bad JSON, text without token ids, a
connection dropped mid-stream, silence. The engine must answer each with a clear EngineError.
Every test runs twice: through the lean client (plain http on asyncio) and through httpx (what
a caller's transport, https or a proxy gets); both must give the same answers.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from agent.engine.base import EngineRequest, Finished, FinishReason, SamplingParams
from agent.engine.http import (
    EngineConnectionError,
    EngineHTTPError,
    EngineProtocolError,
    HttpEngine,
    NotGptOssModel,
    TokenIdsUnsupported,
)
from agent.errors import EngineError, EngineTimeout

pytestmark = pytest.mark.anyio
Action = bytes | float  # bytes to send, or seconds to wait; the connection closes after
Handler = Callable[[str, str, dict[str, Any]], Iterable[Action]]
Make = Callable[..., HttpEngine]
MODELS = {"object": "list", "data": [{"id": "openai/gpt-oss-20b", "object": "model"}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["wire", "httpx"])
def make(request: pytest.FixtureRequest) -> Callable[..., HttpEngine]:
    """HttpEngine through the lean client, or through httpx (a transport given forces it)."""
    def make(url: str, **kw: Any) -> HttpEngine:
        if request.param == "httpx":
            kw["transport"] = httpx.AsyncHTTPTransport()
        engine = HttpEngine(url, **kw)
        assert (engine._wire is not None) == (request.param == "wire")
        return engine
    return make


def reply(status: int, body: Any, ctype: str = "application/json") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n").encode() + data


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
CHUNKED_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")


def sse(data: Any) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def chunk(ids: list[int], reason: str | None = None, **extra: Any) -> bytes:
    return sse({"choices": [{"index": 0, "text": "x", "token_ids": ids,
                             "finish_reason": reason, **extra}]})


class Script:
    """Serves /v1/models itself and hands /v1/completions to ``handler``; records bodies."""

    def __init__(self, handler: Handler, models: Any = MODELS) -> None:
        self.handler, self.models = handler, models
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, method: str, path: str, body: dict[str, Any]) -> Iterable[Action]:
        if path.endswith("/models"):
            return [reply(200, self.models)]
        self.bodies.append(body)
        return self.handler(method, path, body)


async def _read_request(conn: anyio.abc.SocketStream) -> tuple[str, str, dict[str, Any]]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await conn.receive()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += await conn.receive()
    return method, path, json.loads(rest) if rest else {}


@asynccontextmanager
async def misbehaving(script: Script) -> AsyncIterator[str]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            for action in script(*await _read_request(conn)):
                if isinstance(action, bytes):
                    await conn.send(action)
                else:
                    await anyio.sleep(action)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{port}/v1"
        tg.cancel_scope.cancel()


def request(**kw: Any) -> EngineRequest:
    return EngineRequest((1, 2, 3), frozenset({200012, 200002}),
                         SamplingParams(temperature=0, max_tokens=8, seed=4), **kw)


async def drain(engine: HttpEngine, req: EngineRequest | None = None) -> tuple[list[int], Finished]:
    tokens: list[int] = []
    async for event in engine.generate(req or request()):
        if isinstance(event, Finished):
            return tokens, event
        tokens.extend(event.token_ids)
    raise AssertionError("no Finished")


async def test_wire_format_and_usage(make: Make) -> None:
    script = Script(lambda *_: [SSE_HEAD, chunk([10, 11]), chunk([200012], "stop"),
                                sse({"choices": [], "usage": {
                                    "prompt_tokens": 3, "completion_tokens": 3,
                                    "prompt_tokens_details": {"cached_tokens": 2}}}),
                                sse("[DONE]")])
    async with misbehaving(script) as url, make(url, api_key="k") as engine:
        tokens, finished = await drain(engine, request(conversation_id="c"))
    assert tokens == [10, 11, 200012]
    assert finished == Finished(FinishReason.STOP, 3, 3, 2)
    body = script.bodies[0]
    assert body["prompt"] == [1, 2, 3] and body["model"] == "openai/gpt-oss-20b"
    assert body["stop_token_ids"] == [200002, 200012] and body["return_token_ids"] is True
    assert body["stream"] is True and body["seed"] == 4 and body["temperature"] == 0


async def test_http_500_is_a_clear_error_and_not_retried(make: Make) -> None:
    script = Script(lambda *_: [reply(500, {"error": {"message": "CUDA out of memory"}})])
    async with misbehaving(script) as url, make(url, backoff=0) as engine:
        with pytest.raises(EngineHTTPError, match="HTTP 500: CUDA out of memory") as info:
            await drain(engine)
    assert info.value.status == 500 and len(script.bodies) == 1


async def test_503_is_retried_then_succeeds(make: Make) -> None:
    answers = iter([[reply(503, b"busy", "text/plain")],
                    [SSE_HEAD, chunk([5], "length"), sse("[DONE]")]])
    script = Script(lambda *_: next(answers))
    async with misbehaving(script) as url, make(url, retries=2, backoff=0) as engine:
        tokens, finished = await drain(engine)
    assert tokens == [5] and finished.reason is FinishReason.LENGTH and len(script.bodies) == 2


async def test_bad_json_in_the_stream(make: Make) -> None:
    script = Script(lambda *_: [SSE_HEAD, chunk([1]), b"data: {not json\n\n"])
    async with misbehaving(script) as url, make(url) as engine:
        with pytest.raises(EngineProtocolError, match="not JSON"):
            await drain(engine)


async def test_non_json_error_body(make: Make) -> None:
    script = Script(lambda *_: [reply(502, b"<html>Bad Gateway</html>", "text/html")])
    async with misbehaving(script) as url, make(url, retries=0) as engine:
        with pytest.raises(EngineHTTPError, match="502: <html>Bad Gateway"):
            await drain(engine)


async def test_connection_dropped_mid_stream(make: Make) -> None:
    # A chunked body cut inside a chunk: a broken connection, after tokens went out (no retry).
    part = chunk([7, 8])
    script = Script(lambda *_: [CHUNKED_HEAD, f"{len(part):x}\r\n".encode() + part + b"\r\n",
                                b"ff\r\ndata: {\"choi"])
    seen: list[int] = []
    async with misbehaving(script) as url, make(url, backoff=0) as engine:
        with pytest.raises(EngineConnectionError, match="dropped"):
            async for event in engine.generate(request()):
                assert not isinstance(event, Finished)
                seen.extend(event.token_ids)
    assert seen == [7, 8] and len(script.bodies) == 1


async def test_stream_closed_before_finish(make: Make) -> None:
    script = Script(lambda *_: [SSE_HEAD, chunk([7])])
    async with misbehaving(script) as url, make(url) as engine:
        with pytest.raises(EngineConnectionError, match="ended before the completion finished"):
            await drain(engine)


async def test_error_event_mid_stream(make: Make) -> None:
    script = Script(lambda *_: [SSE_HEAD, chunk([7]),
                                sse({"error": {"message": "engine died", "code": 500}})])
    async with misbehaving(script) as url, make(url) as engine:
        with pytest.raises(EngineError, match="engine died"):
            await drain(engine)


async def test_text_without_token_ids(make: Make) -> None:
    script = Script(lambda *_: [SSE_HEAD, sse({"choices": [{"index": 0, "text": "Hello",
                                                            "finish_reason": None}]})])
    async with misbehaving(script) as url, make(url) as engine:
        with pytest.raises(TokenIdsUnsupported, match="return_token_ids"):
            await drain(engine)


async def test_token_ids_via_logprobs(make: Make) -> None:
    lp = {"tokens": ["token_id:42", "token_id:200002"], "token_logprobs": [-0.1, -0.2]}
    script = Script(lambda *_: [SSE_HEAD, sse({"choices": [{"index": 0, "text": "",
                                                            "logprobs": lp,
                                                            "finish_reason": "stop"}]}),
                                sse("[DONE]")])
    async with misbehaving(script) as url, make(url, via_logprobs=True) as engine:
        tokens, finished = await drain(engine)
    assert tokens == [42, 200002] and finished.reason is FinishReason.STOP
    assert script.bodies[0]["return_tokens_as_token_ids"] is True


async def test_not_a_gpt_oss_model(make: Make) -> None:
    other = {"object": "list", "data": [{"id": "meta-llama/Llama-3-8B", "object": "model"}]}
    script = Script(lambda *_: [SSE_HEAD, chunk([1], "length"), sse("[DONE]")], models=other)
    async with misbehaving(script) as url:
        async with make(url) as engine:
            with pytest.raises(NotGptOssModel, match="not a gpt-oss model"):
                await drain(engine)
        async with make(url, model="openai/gpt-oss-120b") as engine:
            with pytest.raises(NotGptOssModel, match="does not serve"):
                await drain(engine)
        async with make(url, check_model=False) as engine:
            assert (await drain(engine))[0] == [1]


async def test_silent_server_times_out(make: Make) -> None:
    script = Script(lambda *_: [SSE_HEAD, chunk([1]), 5.0])
    async with misbehaving(script) as url, make(url, timeout=0.3, retries=0) as engine:
        with pytest.raises(EngineTimeout):
            await drain(engine)


async def test_connection_refused(make: Make) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with make(f"http://127.0.0.1:{port}/v1", retries=1, backoff=0) as engine:
        with pytest.raises(EngineConnectionError, match="connection failed"):
            await drain(engine)


@pytest.mark.parametrize(("url", "env", "headers", "lean"), [
    ("http://127.0.0.1:8000/v1", {}, {}, True),
    ("https://127.0.0.1:8000/v1", {}, {}, False),  # TLS: httpx
    ("http://u:p@127.0.0.1:8000/v1", {}, {}, False),  # userinfo (basic auth): httpx
    ("http://127.0.0.1:8000/v1", {"HTTP_PROXY": "http://proxy:3128"}, {}, False),
    ("http://127.0.0.1:8000/v1", {"ALL_PROXY": "http://proxy:3128"}, {}, False),
    ("http://127.0.0.1:8000/v1", {}, {"X-A": "a\r\nB: b"}, False),  # httpx reports it
])
def test_which_client_a_url_gets(monkeypatch: pytest.MonkeyPatch, url: str, env: dict[str, str],
                                 headers: dict[str, str], lean: bool) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (HttpEngine(url, headers=headers)._wire is not None) is lean
