"""``HttpEngine``: the engine protocol over an OpenAI-compatible ``/v1/completions`` endpoint.

Token ids go out as the ``prompt`` (a list of ints) and come back through vLLM's
``return_token_ids`` extension (vLLM >= 0.10.2; also ``agent serve``), or, for servers that only
have the older extension, through ``logprobs.tokens`` written as ``"token_id:N"``
(``return_tokens_as_token_ids``, vLLM >= 0.6; ``via_logprobs=True``). Streaming is SSE.

Example::

    async with HttpEngine("http://127.0.0.1:8000/v1") as engine:
        async for event in engine.generate(EngineRequest(prompt_tokens=ids, stop_tokens=stops)):
            ...

Transport: plain ``http://`` on asyncio goes through :mod:`agent.engine.http_wire`, a small
HTTP/1.1 client that costs under a third of httpx's CPU per streamed token; https, proxies, userinfo,
a caller's ``transport`` and trio go through httpx. Both answer with the same errors.

Errors (every httpx and http_wire exception is translated in :func:`_translate`, and nowhere
else)::

    EngineError
    ├── EngineTimeout              no answer (or no next chunk) within ``timeout``
    ├── EngineConnectionError      refused, reset, or dropped in the middle of a stream
    ├── EngineHTTPError            an HTTP error status (``.status``, ``.body``)
    ├── EngineProtocolError        a body or event that is not what the API promises
    │   └── TokenIdsUnsupported    the server answers text but no token ids
    └── NotGptOssModel             the served model is not gpt-oss (or not the one named)

Connection failures, timeouts and 429/502/503/504 are retried (``retries`` times, exponential
back-off) while no token has been yielded; after that a retry would repeat tokens, so it raises.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Self

import anyio
import httpx
import structlog

from agent.engine.base import EngineEvent, EngineRequest, Finished, FinishReason, TokenDelta
from agent.engine.http_wire import Http11Pool, WireBroken, WireError, WireTimeout
from agent.errors import EngineError, EngineTimeout

log = structlog.get_logger(__name__)

_RETRY_STATUS = frozenset({429, 502, 503, 504})
_POOL_SHARDS = 4
_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH,
           "abort": FinishReason.ABORT, "cancelled": FinishReason.ABORT}
GPT_OSS_MARKERS = ("gpt-oss", "gpt_oss", "gptoss")


class EngineConnectionError(EngineError):
    """The server could not be reached, or the connection broke (e.g. mid-stream)."""


class EngineHTTPError(EngineError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class EngineProtocolError(EngineError):
    """The server's answer does not follow the OpenAI completions API (bad JSON, missing fields)."""


class TokenIdsUnsupported(EngineProtocolError):
    """The server streams text without token ids; the agent needs ids to parse Harmony."""


class NotGptOssModel(EngineError):
    """The server does not serve a gpt-oss model (or not the model that was asked for)."""


@contextmanager
def _translate(url: str) -> Iterator[None]:
    """The one place httpx (and http_wire) exceptions become :class:`EngineError` subclasses."""
    try:
        yield
    except (httpx.TimeoutException, WireTimeout) as exc:
        raise EngineTimeout(f"{url}: no answer in time ({type(exc).__name__})") from exc
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
            httpx.WriteError, httpx.CloseError, WireBroken) as exc:
        raise EngineConnectionError(f"{url}: connection failed or dropped ({exc!r})") from exc
    except (httpx.HTTPError, WireError) as exc:
        raise EngineError(f"{url}: HTTP failure ({exc!r})") from exc


@dataclass(slots=True)
class _StreamState:
    tokens: int = 0
    reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    last_token: int | None = None


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500] or "(empty body)"
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err)[:500]
    return str(err)[:500]


class HttpEngine:
    """An OpenAI-compatible completions server (vLLM, SGLang, ``agent serve``) as an engine.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: sent as ``Authorization: Bearer``.
        model: the served model to use; None takes the only one ``/models`` lists.
        timeout: seconds to connect, and to wait for each chunk of a stream.
        retries: extra attempts after a connection failure, timeout or 429/502/503/504.
        check_model: refuse servers whose model name does not say gpt-oss.
        via_logprobs: read token ids from ``logprobs`` (``return_tokens_as_token_ids``).
        headers: extra HTTP headers for every request.
        timeout_s: the same as ``timeout`` (the name the settings file uses).
        transport: an httpx transport (tests, unix sockets).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout: float = 60.0, retries: int = 2, check_model: bool = True,
                 via_logprobs: bool = False, backoff: float = 0.25,
                 headers: Mapping[str, str] | None = None, timeout_s: float | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        timeout = timeout_s if timeout_s is not None else timeout
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.check_model = check_model
        self.via_logprobs = via_logprobs
        self._backoff = backoff
        sent = dict(headers or {}) | ({"Authorization": f"Bearer {api_key}"} if api_key else {})
        # Several small connection pools instead of one: httpcore's pool checks every connection
        # against every idle one whenever a request starts or ends (quadratic: about a
        # millisecond of CPU per request at 32 open streams). A transport given by the caller
        # (tests, unix sockets) gets one pool, as it may hold state.
        shards = 1 if transport is not None else _POOL_SHARDS
        self._clients = [httpx.AsyncClient(
            base_url=self.base_url + "/", headers=sent, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=None,
                                max_keepalive_connections=64 // shards),
        ) for _ in range(shards)]
        self._streams = [0] * shards  # streams open in each pool
        self._wire = None if transport is not None else _wire_pool(
            self.base_url, sent, timeout=timeout, connect_timeout=min(timeout, 10.0))
        self._wire_path = httpx.URL(self.base_url).raw_path.decode("ascii").rstrip("/")
        self._resolved: str | None = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
        for client in self._clients:
            await client.aclose()

    # -- the served model ---------------------------------------------------------------------
    async def resolve_model(self) -> str:
        """The model name to send; checks ``/models`` once. Raises NotGptOssModel."""
        async with self._lock:
            if self._resolved is None:
                self._resolved = self._pick_model(await self._get_json("models"))
            return self._resolved

    def _pick_model(self, listing: Any) -> str:
        try:
            entries = [m for m in listing["data"] if isinstance(m, dict) and "id" in m]
        except (KeyError, TypeError) as exc:
            raise EngineProtocolError(f"{self.base_url}/models: not a model list") from exc
        names = [str(m["id"]) for m in entries]
        if self.model is not None:
            entry = next((m for m in entries if m["id"] == self.model
                          or m.get("root") == self.model), None)
            if entry is None:
                raise NotGptOssModel(f"{self.base_url} does not serve {self.model!r}; "
                                     f"it serves {names}")
        elif len(entries) == 1:
            entry = entries[0]
        else:
            raise NotGptOssModel(f"{self.base_url} serves {names}: name one with model=")
        text = f"{entry['id']} {entry.get('root') or ''}".lower()
        if self.check_model and entry.get("owned_by") != "oss-agent" \
                and not any(m in text for m in GPT_OSS_MARKERS):
            raise NotGptOssModel(
                f"{self.base_url} serves {entry['id']!r}, which is not a gpt-oss model; the agent "
                "speaks Harmony and needs gpt-oss (pass check_model=False to skip this check)")
        return str(entry["id"])

    async def _get_json(self, path: str) -> Any:
        url = f"{self.base_url}/{path}"
        with _translate(url):
            async with self._request("GET", path, {}) as (status, chunks):
                raw = b"".join([chunk async for chunk in chunks])
        if status >= 400:
            text = raw.decode("utf-8", "replace")
            raise EngineHTTPError(f"{url}: HTTP {status}: {_error_message(text)}",
                                  status=status, body=text)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise EngineProtocolError(f"{url}: the body is not JSON") from exc

    @asynccontextmanager
    async def _request(self, method: str, path: str, headers: dict[str, str],
                       body: dict[str, Any] | None = None
                       ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        """Send a request; yields the status and the body as it arrives. Plain http:// on
        asyncio goes through http_wire (a fraction of httpx's CPU per streamed event); the
        rest through httpx, streams spread over its pools. Raises httpx or http_wire errors."""
        if self._wire is not None and _on_asyncio():
            content = None if body is None else _dumps(body)
            async with self._wire.open(method, f"{self._wire_path}/{path}", headers,
                                       content) as wire:
                yield wire.status, wire.chunks()
            return
        shard = min(range(len(self._clients)), key=self._streams.__getitem__) \
            if body is not None else 0
        self._streams[shard] += 1
        try:
            async with self._clients[shard].stream(method, path, json=body,
                                                   headers=headers) as response:
                yield response.status_code, response.aiter_bytes()
        finally:
            self._streams[shard] -= 1

    # -- generation ---------------------------------------------------------------------------
    def _payload(self, request: EngineRequest, model: str) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": model, "prompt": list(request.prompt_tokens), "max_tokens": s.max_tokens,
            "temperature": s.temperature, "top_p": s.top_p, "stream": True,
            "stream_options": {"include_usage": True},
            "stop_token_ids": sorted(request.stop_tokens), "skip_special_tokens": False,
            "return_token_ids": True,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if self.via_logprobs:
            body |= {"logprobs": 0, "return_tokens_as_token_ids": True}
        return body

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        model = await self.resolve_model()
        body = self._payload(request, model)
        headers = {"X-Conversation-Id": request.conversation_id} if request.conversation_id else {}
        url = f"{self.base_url}/completions"
        attempt = 0
        while True:
            state = _StreamState()
            try:
                async for event in self._stream_once(url, body, headers, request, state):
                    yield event
                return
            except (EngineConnectionError, EngineTimeout, EngineHTTPError) as exc:
                retryable = not isinstance(exc, EngineHTTPError) or exc.status in _RETRY_STATUS
                if state.tokens or not retryable or attempt >= self.retries:
                    raise
                attempt += 1
                log.warning("http_engine.retry", url=url, attempt=attempt, error=str(exc))
                await anyio.sleep(self._backoff * 2 ** (attempt - 1))

    async def _stream_once(self, url: str, body: dict[str, Any], headers: dict[str, str],
                           request: EngineRequest, state: _StreamState
                           ) -> AsyncIterator[EngineEvent]:
        with _translate(url):
            async with self._request("POST", "completions", headers, body) as (status, chunks):
                if status >= 400:
                    text = b"".join([c async for c in chunks]).decode("utf-8", "replace")
                    raise EngineHTTPError(f"{url}: HTTP {status}: {_error_message(text)}",
                                          status=status, body=text)
                done = False
                # Bytes split into lines here: httpx's text and line decoders cost more per event
                # than the JSON parse does (one SSE event per token is the common case).
                rest = b""
                async for raw in chunks:
                    lines = (rest + raw).split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if not line.startswith(b"data:"):
                            continue  # blank separators, comments, "event:" lines
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            done = True
                            break
                        for event in self._on_chunk(url, data, request, state):
                            yield event
                    if done:
                        break
                if done:
                    # Read up to the body's end (its last, empty chunk) so that the connection
                    # goes back to the pool: closing it unread would cost every request a new
                    # TCP connection on both sides.
                    await _drain(chunks)
        if not done and state.reason is None:
            raise EngineConnectionError(f"{url}: the stream ended before the completion finished")
        if state.reason is None:
            raise EngineProtocolError(f"{url}: the stream ended without a finish_reason")
        yield Finished(state.reason, state.prompt_tokens or len(request.prompt_tokens),
                       state.completion_tokens if state.completion_tokens is not None
                       else state.tokens, state.cached_tokens)

    def _on_chunk(self, url: str, data: bytes, request: EngineRequest,
                  state: _StreamState) -> list[EngineEvent]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise EngineProtocolError(
                f"{url}: a stream event is not JSON: {data[:200].decode('utf-8', 'replace')!r}"
            ) from exc
        if not isinstance(chunk, dict):
            raise EngineProtocolError(f"{url}: a stream event is not a JSON object")
        if "error" in chunk:  # vLLM reports failures inside the stream
            raise EngineError(f"{url}: the server failed mid-stream: "
                              f"{_error_message(json.dumps(chunk))}")
        _read_usage(chunk.get("usage"), state)
        events: list[EngineEvent] = []
        for choice in chunk.get("choices") or []:
            ids = self._token_ids(url, choice)
            if ids:
                state.tokens += len(ids)
                state.last_token = ids[-1]
                events.append(TokenDelta(tuple(ids)))
            reason = choice.get("finish_reason")
            if reason is not None:
                state.reason = _FINISH.get(reason, FinishReason.STOP)
                extra = _missing_stop(choice.get("stop_reason"), request, state)
                if extra is not None:
                    events.append(extra)
        return events

    def _token_ids(self, url: str, choice: dict[str, Any]) -> list[int]:
        ids = choice.get("token_ids")
        if ids is None and self.via_logprobs:
            tokens = (choice.get("logprobs") or {}).get("tokens")
            if tokens is not None:
                try:
                    ids = [int(str(t).removeprefix("token_id:")) for t in tokens]
                except ValueError as exc:
                    raise TokenIdsUnsupported(
                        f"{url}: logprobs tokens are text, not 'token_id:N'") from exc
        if ids is None:
            if choice.get("text"):
                raise TokenIdsUnsupported(
                    f"{url} streams text without token ids: serve with vLLM >= 0.10.2 "
                    "(return_token_ids), `agent serve`, or pass via_logprobs=True for servers "
                    "with return_tokens_as_token_ids")
            return []
        if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
            raise EngineProtocolError(f"{url}: token_ids is not a list of ints: {ids!r}")
        return ids


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]``; a server that keeps the stream open or breaks it there has
    already answered, so this gives up after a second and any failure only costs the connection."""
    with anyio.move_on_after(1.0):
        try:
            async for _ in chunks:
                pass
        except (httpx.HTTPError, WireError):
            pass


def _wire_pool(base_url: str, headers: Mapping[str, str], *, timeout: float,
               connect_timeout: float) -> Http11Pool | None:
    """The lean client for ``base_url`` if it is plain http:// without a proxy or userinfo
    (cases where httpx's handling is needed), else None."""
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    if url.scheme != "http" or url.userinfo or "http" in proxies or "all" in proxies:
        return None
    try:
        return Http11Pool(url.host, url.port or 80, url.netloc.decode("ascii"), timeout=timeout,
                          connect_timeout=connect_timeout, headers=headers)
    except WireError:  # headers it will not send: httpx reports those, per request, as before
        return None


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio
        return False
    return True


def _dumps(body: dict[str, Any]) -> bytes:
    # As httpx's json=: compact, UTF-8.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode()


def _read_usage(usage: Any, state: _StreamState) -> None:
    if not isinstance(usage, dict):
        return
    state.prompt_tokens = usage.get("prompt_tokens", state.prompt_tokens)
    state.completion_tokens = usage.get("completion_tokens", state.completion_tokens)
    details = usage.get("prompt_tokens_details") or {}
    state.cached_tokens = int(details.get("cached_tokens") or 0)


def _missing_stop(stop_reason: Any, request: EngineRequest,
                  state: _StreamState) -> TokenDelta | None:
    """The stop token itself, when a server reports it only as ``stop_reason``.

    The Harmony parser needs ``<|call|>``/``<|return|>`` to close the last message.
    """
    if (isinstance(stop_reason, int) and stop_reason in request.stop_tokens
            and state.last_token != stop_reason):
        state.tokens += 1
        state.last_token = stop_reason
        return TokenDelta((stop_reason,))
    return None
