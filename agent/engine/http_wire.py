"""A lean HTTP/1.1 client for :class:`~agent.engine.http.HttpEngine`: plain ``http://``, asyncio.

Why it exists: a completions stream is one SSE event per token, and httpx -> httpcore -> h11 on
anyio cost ~300 us of CPU per event (seven async generator layers, an h11 event, an anyio cancel
scope and two ``epoll_ctl`` calls per read) -- more than the server spends producing the event,
on the same cores as the engine. Here a connection is an asyncio Protocol whose ``read`` hands
over everything that arrived in one piece, and a chunked body is decoded with a few slices.
HttpEngine keeps httpx for everything this does not cover (https, proxies, userinfo, custom
transports, trio).

Errors: :class:`WireBroken` (refused, reset, closed in the middle of a response, malformed
framing), :class:`WireTimeout` (no connection or no data in time), :class:`WireError` (a
request we refuse to send). ``agent.engine.http._translate`` turns them into EngineErrors.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

_MAX_HEAD = 64 * 1024  # response head, and one chunk-size line
_HIGH_WATER = 1 << 20  # unread bytes at which the socket stops being read
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class WireError(Exception):
    """A request that cannot be sent as asked (e.g. a line break in a header value)."""


class WireBroken(WireError):
    """The connection failed, closed early, or carried something that is not HTTP/1.1."""


class WireTimeout(WireError):
    """No connection, or no data on it, within the timeout."""


class _NoResponse(WireBroken):
    """The connection closed before any byte of a response (a reused connection gone stale)."""


class ChunkedDecoder:
    """``Transfer-Encoding: chunked``, decoded as bytes arrive: ``feed`` takes bytes split
    anywhere and returns the body bytes they complete; ``done`` once the last chunk and the
    trailers are in. Raises WireBroken on malformed framing."""

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # data bytes still to come in the current chunk
        self._crlf = False  # the CRLF that ends a chunk's data is next
        self._trailers = False  # after the last (empty) chunk: trailer lines up to a blank one
        self.done = False
        self.extra = b""  # bytes after the body's end (a server that wrote past it)

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, end = 0, len(buf)
        while pos < end and not self.done:
            if self._left:
                take = min(self._left, end - pos)
                out.append(buf[pos:pos + take])
                pos += take
                self._left -= take
                self._crlf = not self._left
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if end - pos > _MAX_HEAD:
                    raise WireBroken("a chunk-size line is too long")
                break
            line, pos = buf[pos:eol], eol + 2
            if self._crlf:
                if line:
                    raise WireBroken("a chunk's data is longer than its size says")
                self._crlf = False
            elif self._trailers:
                self.done = not line
            else:
                size = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
                if not _HEX.fullmatch(size):
                    raise WireBroken(f"a chunk size is not hex: {line[:40]!r}")
                self._left = int(size, 16)
                self._trailers = not self._left
        self._buf = buf[pos:]
        if self.done:
            self.extra, self._buf = self._buf, b""
        return out[0] if len(out) == 1 else b"".join(out)


class _Connection(asyncio.Protocol):
    """One TCP connection; ``read`` returns what arrived since the last read (or waits)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        # One timer per connection, moved lazily: a timer per read (armed, then cancelled a
        # moment later) cost a heap push and pop of Python-compared handles for every event.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER and not self._paused and self.transport is not None:
            self.transport.pause_reading()  # a consumer that stopped reading: stop buffering
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport: HTTP/1.1 has no use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def reusable(self) -> bool:
        return (not self._eof and not self._chunks and self.transport is not None
                and not self.transport.is_closing())

    def write(self, data: bytes) -> None:
        if not self.reusable:
            raise _NoResponse("the connection closed before the request was sent")
        assert self.transport is not None
        self.transport.write(data)

    async def read(self, timeout: float) -> bytes:
        """The bytes that arrived, waiting up to ``timeout`` seconds for some; b"" at EOF."""
        if not self._chunks and not self._eof:
            self._deadline = self._loop.time() + timeout
            if self._timer is None:
                self._timer = self._loop.call_at(self._deadline, self._expire)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks, self._chunks, self._size = self._chunks, [], 0
        if self._paused and self.transport is not None:
            self.transport.resume_reading()
            self._paused = False
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _expire(self) -> None:
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return  # not waiting now: the next wait arms the timer again
        if self._loop.time() < self._deadline:  # data came since it was armed: wait on
            self._timer = self._loop.call_at(self._deadline, self._expire)
        else:
            self._waiter.set_exception(WireTimeout("no data from the server within the timeout"))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()


class Response:
    """A response whose head has been read; the body comes from :meth:`chunks` or :meth:`read`."""

    def __init__(self, conn: _Connection, timeout: float, status: int, headers: dict[str, str],
                 http11: bool, rest: bytes) -> None:
        self.status, self.headers = status, headers
        self._conn, self._timeout, self._pending = conn, timeout, rest
        self._decoder: ChunkedDecoder | None = None
        self._left: int | None = None  # Content-Length bytes still to come; None: no length
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._decoder = ChunkedDecoder()
        elif status in (204, 304):
            self._left = 0
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise WireBroken(f"a bad Content-Length: {length[:40]!r}")
            self._left = int(length)
        # (Without framing the body ends when the connection closes, which makes it unusable.)
        self.keep_alive = http11 and "close" not in headers.get("connection", "").lower()
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked framing removed); raises WireBroken if it is cut."""
        data, self._pending = self._pending, b""
        while True:
            if data:
                if self._decoder is not None:
                    body = self._decoder.feed(data)
                    self.keep_alive &= not self._decoder.extra
                elif self._left is not None:
                    body = data[:self._left]
                    self._left -= len(body)
                    self.keep_alive &= len(body) == len(data)
                else:
                    body = data
                if body:
                    yield body
            if (self._decoder.done if self._decoder is not None else self._left == 0):
                self.complete = True
                return
            data = await self._conn.read(self._timeout)
            if not data:
                if self._decoder is None and self._left is None:
                    self.complete = True  # a body delimited by the connection's end
                    return
                raise WireBroken("the connection closed in the middle of the response body")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])


class Http11Pool:
    """Keep-alive HTTP/1.1 connections to one ``host:port``; one request at a time on each."""

    def __init__(self, host: str, port: int, authority: str, *, timeout: float,
                 connect_timeout: float, headers: Mapping[str, str], max_idle: int = 64) -> None:
        self._host, self._port = host, port
        self._timeout, self._connect_timeout, self._max_idle = timeout, connect_timeout, max_idle
        fixed = {"Host": authority, "Accept": "*/*", "User-Agent": "oss-agent"} | dict(headers)
        self._fixed = _header_lines(fixed)
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def open(self, method: str, target: str, headers: Mapping[str, str],
                   body: bytes | None = None) -> AsyncIterator[Response]:
        """Send a request and read its head; the connection goes back to the pool if the body
        was read to its end, and is closed otherwise (an error, a consumer that stopped)."""
        length = b"" if body is None else b"Content-Length: %d\r\n" % len(body)
        request = b"".join((f"{method} {target} HTTP/1.1\r\n".encode(), self._fixed,
                            _header_lines(headers), length, b"\r\n", body or b""))
        conn, reused = await self._acquire()
        try:
            try:
                conn.write(request)
                response = await self._head(conn)
            except _NoResponse:
                if not reused:
                    raise
                # The server closed this idle connection as we reused it: one fresh try.
                conn.close()
                conn = await self._connect()
                conn.write(request)
                response = await self._head(conn)
            yield response
        except BaseException:
            conn.close()
            raise
        if response.complete and response.keep_alive and conn.reusable \
                and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._idle.clear()
            self._loop = loop
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn, True
            conn.close()
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(lambda: _Connection(loop), self._host,
                                                       self._port)
        except TimeoutError as exc:
            raise WireTimeout(f"no connection to {self._host}:{self._port} in time") from exc
        except OSError as exc:
            raise WireBroken(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        return conn

    async def _head(self, conn: _Connection) -> Response:
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise WireBroken("the response head is too long")
                data = await conn.read(self._timeout)
                if not data:
                    raise (WireBroken if buf else _NoResponse)(
                        "the server closed the connection without a complete response head")
                buf += data
                continue
            status, http11, headers = _parse_head(buf[:end])
            buf = buf[end + 4:]
            if status >= 200:
                return Response(conn, self._timeout, status, headers, http11, buf)
            # 1xx (100 Continue, 103 Early Hints) is informational: the real head follows.


def _parse_head(head: bytes) -> tuple[int, bool, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isdigit() and len(code) == 3):
        raise WireBroken(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise WireBroken(f"a malformed header line: {line[:80]!r}")
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(code), version == "HTTP/1.1", headers


def _header_lines(headers: Mapping[str, str]) -> bytes:
    out = []
    for name, value in headers.items():
        line = f"{name}: {value}"
        if "\r" in line or "\n" in line or ":" in name or not name:
            raise WireError(f"header {name!r} cannot be sent (a line break or a bad name)")
        try:
            out.append(line.encode("latin-1") + b"\r\n")
        except UnicodeEncodeError:
            raise WireError(f"header {name!r} is not latin-1 text") from None
    return b"".join(out)
