"""http_wire: the chunked decoder on every split of its input, and the pool against a raw
loopback server that scripts its bytes (keep-alive, stale connections, framings, cuts, silence)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from agent.engine.http_wire import ChunkedDecoder, Http11Pool, WireBroken, WireError, WireTimeout

pytestmark = pytest.mark.anyio
BODY = b"data: {\"a\":1}\n\ndata: [DONE]\n\n"
# Chunks of the body with an extension, an upper-case size, and a trailer after the last one.
CHUNKED = (b"7;ext=1\r\ndata: {\r\n" + b"%X\r\n" % (len(BODY) - 7) + BODY[7:] + b"\r\n"
           b"0\r\nX-Trailer: t\r\n\r\n")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def decode(pieces: list[bytes]) -> tuple[bytes, ChunkedDecoder]:
    decoder = ChunkedDecoder()
    return b"".join(decoder.feed(p) for p in pieces), decoder


def test_chunked_any_split() -> None:
    for i in range(len(CHUNKED) + 1):
        for j in range(i, len(CHUNKED) + 1):
            body, decoder = decode([CHUNKED[:i], CHUNKED[i:j], CHUNKED[j:]])
            assert body == BODY and decoder.done and decoder.extra == b"", (i, j)
    body, decoder = decode([bytes([b]) for b in CHUNKED])
    assert body == BODY and decoder.done


def test_chunked_not_done_until_the_blank_line_after_the_last_chunk() -> None:
    body, decoder = decode([CHUNKED[:-2]])
    assert body == BODY and not decoder.done
    assert decoder.feed(b"\r\nHTTP/1.1 200 OK") == b"" and decoder.done
    assert decoder.extra == b"HTTP/1.1 200 OK"


def test_chunked_random_chunk_sizes() -> None:
    rng = random.Random(1)
    data = bytes(rng.randrange(256) for _ in range(5000))
    wire, pos = b"", 0
    while pos < len(data):
        n = rng.randrange(1, 300)
        wire += b"%x\r\n" % len(data[pos:pos + n]) + data[pos:pos + n] + b"\r\n"
        pos += n
    wire += b"0\r\n\r\n"
    cuts = sorted(rng.sample(range(len(wire)), 200))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    body, decoder = decode(pieces)
    assert body == data and decoder.done


@pytest.mark.parametrize("wire", [b"zz\r\n", b"0x5\r\nhello\r\n", b"-5\r\n", b"+5\r\nhello\r\n",
                                  b"3\r\nhello\r\n", b"5\r\nhelloXY\r\n", b"\r\n",
                                  b"1" * 70000])
def test_chunked_malformed(wire: bytes) -> None:
    with pytest.raises(WireBroken):
        ChunkedDecoder().feed(wire)


# -- the pool against a scripted server --------------------------------------------------------

Step = bytes | float | None  # bytes to send, seconds to wait, None: read the next request
Script = Callable[[int], Sequence[Step]]  # connection number -> what the server does on it


async def _read_request(conn: anyio.abc.SocketStream, buf: bytes) -> tuple[bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        buf += await conn.receive()
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += await conn.receive()
    return head, rest[length:]


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[Http11Pool, list[bytes]]]:
    """A pool aimed at a server that runs ``script(n)`` on its n-th connection; also yields the
    request heads the server read, in order."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    heads: list[bytes] = []
    count = 0

    async def handle(conn: anyio.abc.SocketStream) -> None:
        nonlocal count
        count += 1
        buf = b""
        async with conn:
            for step in script(count - 1):
                if step is None:
                    try:
                        head, buf = await _read_request(conn, buf)
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return  # the client closed the connection: the script ends here
                    heads.append(head)
                elif isinstance(step, bytes):
                    await conn.send(step)
                else:
                    await anyio.sleep(step)

    pool = Http11Pool("127.0.0.1", port, f"127.0.0.1:{port}", timeout=0.5, connect_timeout=1,
                      headers={"Authorization": "Bearer k"})
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield pool, heads
        finally:
            await pool.aclose()
            tg.cancel_scope.cancel()


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED


async def fetch(pool: Http11Pool, method: str = "GET", body: bytes | None = None) -> bytes:
    async with pool.open(method, "/v1/x", {"X-Id": "7"}, body) as response:
        assert 200 <= response.status < 300
        return await response.read()


async def test_keep_alive_reuses_one_connection() -> None:
    async with scripted(lambda n: [None, ok(b"one"), None, CHUNKED_OK, None, ok(b"")]) \
            as (pool, heads):
        assert await fetch(pool) == b"one"
        assert await fetch(pool, "POST", b'{"p":1}') == BODY
        assert await fetch(pool) == b""
    assert len(heads) == 3  # all on connection 0: the script serves no other
    assert heads[1].startswith(b"POST /v1/x HTTP/1.1\r\n")
    lines = heads[1].split(b"\r\n")
    assert b"Host: 127.0.0.1:" + str(pool._port).encode() in lines
    assert b"Authorization: Bearer k" in lines and b"X-Id: 7" in lines
    assert b"Content-Length: 7" in lines


async def test_a_stale_connection_is_retried_once_on_a_new_one() -> None:
    # The server reads the second request on the kept connection, then closes without answering
    # (it timed the connection out just as the client reused it).
    script = {0: [None, ok(b"one"), None], 1: [None, ok(b"two")]}
    async with scripted(script.__getitem__) as (pool, heads):
        assert await fetch(pool) == b"one"
        assert await fetch(pool) == b"two"
    assert len(heads) == 3


async def test_a_new_connection_closed_without_answer_is_an_error() -> None:
    async with scripted(lambda n: [None]) as (pool, heads):
        with pytest.raises(WireBroken, match="without a complete response head"):
            await fetch(pool)
    assert len(heads) == 1  # no retry on a fresh connection


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",  # shorter than its length
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",  # cut inside a chunk
    b"HTTP/1.1 200 OK\r\nContent-Le",  # cut inside the head
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"SPDY/3 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
])
async def test_cut_or_malformed_responses(answer: bytes) -> None:
    async with scripted(lambda n: [None, answer]) as (pool, _):
        with pytest.raises(WireBroken):
            await fetch(pool)


async def test_body_until_close_and_informational_heads() -> None:
    answers = [b"HTTP/1.1 200 OK\r\n\r\nto the end",
               b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after 100", b"Connection: close\r\n"),
               b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
               b"HTTP/1.1 204 No Content\r\n\r\n"]
    async with scripted(lambda n: [None, answers[n]]) as (pool, heads):
        assert [await fetch(pool) for _ in answers] == [b"to the end", b"after 100", b"hi", b""]
    # None of these can keep the connection except 204, which was last: one connection each.
    assert len(heads) == 4


@pytest.mark.parametrize("answer", [
    ok(b"one", b"Connection: close\r\n"),
    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\none",
    ok(b"one") + b"JUNK",  # more than its Content-Length
    CHUNKED_OK + b"JUNK",  # bytes after the last chunk
])
async def test_connections_that_cannot_carry_another_request_are_closed(answer: bytes) -> None:
    # The server would answer a second request on the same connection with "stale".
    script = {0: [None, answer, None, ok(b"stale")], 1: [None, ok(b"fresh")]}
    async with scripted(script.__getitem__) as (pool, heads):
        await fetch(pool)
        assert await fetch(pool) == b"fresh"
    assert len(heads) == 2


async def test_a_reader_that_lags_stops_the_socket_being_read() -> None:
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB, more than the buffer's high-water mark
    async with scripted(lambda n: [None, ok(big), 1.0]) as (pool, _):
        async with pool.open("GET", "/", {}) as response:
            await anyio.sleep(0.3)
            transport = response._conn.transport
            assert transport is not None and not transport.is_reading()
            assert await response.read() == big


async def test_chunks_arrive_as_they_are_sent() -> None:
    script = [None, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0.05,
              b"3\r\none\r\n", 0.05, b"3\r\ntwo\r\n0\r\n\r\n"]
    async with scripted(lambda n: script) as (pool, _):
        async with pool.open("GET", "/", {}) as response:
            assert [c async for c in response.chunks()] == [b"one", b"two"]
            assert response.complete and response.keep_alive


async def test_silence_times_out_and_the_connection_is_not_reused() -> None:
    async with scripted(lambda n: [None, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", 5.0]
                        if n == 0 else [None, ok(b"fresh")]) as (pool, heads):
        with pytest.raises(WireTimeout):
            await fetch(pool)
        assert await fetch(pool) == b"fresh"
    assert len(heads) == 2


async def test_the_timeout_is_per_read_not_per_response() -> None:
    # Chunks 0.3 s apart for 1.2 s, under a 0.5 s timeout: each wait is within it.
    script: list[Step] = [None, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    for _ in range(4):
        script += [0.3, b"1\r\nx\r\n"]
    script.append(b"0\r\n\r\n")
    async with scripted(lambda n: script) as (pool, _):
        assert await fetch(pool) == b"xxxx"


async def test_a_consumer_that_stops_early_closes_the_connection() -> None:
    # The rest of the first body comes after the consumer stopped: were that connection pooled,
    # the next request would read it as its response.
    first = [None, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n", 0.1,
             b"3\r\ntwo\r\n0\r\n\r\n", None, ok(b"stale")]
    async with scripted(lambda n: first if n == 0 else [None, ok(b"fresh")]) as (pool, heads):
        async with pool.open("GET", "/", {}) as response:
            async for chunk in response.chunks():
                assert chunk == b"one"
                break
        assert await fetch(pool) == b"fresh"
    assert len(heads) == 2


async def test_connection_refused() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    pool = Http11Pool("127.0.0.1", port, "x", timeout=1, connect_timeout=1, headers={})
    with pytest.raises(WireBroken, match="cannot connect"):
        await fetch(pool)


def test_headers_that_would_split_the_request_are_refused() -> None:
    with pytest.raises(WireError, match="line break"):
        Http11Pool("127.0.0.1", 1, "x", timeout=1, connect_timeout=1,
                   headers={"X-A": "ok\r\nInjected: 1"})


async def test_a_request_header_with_a_line_break_is_refused_before_sending() -> None:
    async with scripted(lambda n: [None, ok()]) as (pool, heads):
        with pytest.raises(WireError, match="line break"):
            async with pool.open("GET", "/", {"X-Id": "a\nb"}):
                pass
    assert heads == []
