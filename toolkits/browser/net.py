"""Policy-checked HTTP for the browser: every hop's URL and every connection's address.

httpx connects through :class:`PolicyNetworkBackend`, which resolves the host itself, checks
every address with :func:`policies.network.resolve_and_check` and connects to the checked
address, so a DNS answer cannot change between check and connect and a refused address is never
dialled. Redirects are followed here, one hop at a time, each hop's URL checked first. A page is
read under one deadline (``page_timeout_s``, so a slow-loris server cannot hold a call) and a
byte cap (``max_page_bytes``).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import anyio
import httpcore
import httpx
import structlog

from agent.errors import PolicyDenied, ToolError, ToolTimeout
from policies.config import BrowserPolicy
from policies.network import check_url, resolve_and_check

log = structlog.get_logger(__name__)

USER_AGENT = "Mozilla/5.0 (compatible; oss-agent-browser/0.1)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every client: building one per run costs milliseconds."""
    return httpx.create_ssl_context()


class PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the browser policy allows (checked after resolution)."""

    def __init__(self, policy: BrowserPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # An IP literal is checked without a resolver call; a name is resolved once here and
        # the checked addresses are dialled in turn, so nothing re-resolves it after the check.
        addresses = await resolve_and_check(host, port, self._policy)
        for address in addresses[:-1]:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue  # e.g. an IPv6 address on a host without IPv6: try the next one
        return await self._inner.connect_tcp(
            addresses[-1], port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise PolicyDenied("the browser does not open unix sockets", rule="browser.url")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def policy_client(policy: BrowserPolicy) -> httpx.AsyncClient:
    """An httpx client whose every connection passes ``policy`` (no env proxies, no redirects)."""
    transport = httpx.AsyncHTTPTransport(verify=_ssl_context())
    # httpx has no public hook for the network backend; the pool it builds takes one, so we
    # swap in an identical pool that dials through the policy.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=_ssl_context(), max_connections=20, max_keepalive_connections=10,
        network_backend=PolicyNetworkBackend(policy),
    )
    return httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False,
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
            "Accept-Encoding": "gzip, deflate",  # the two we decode under the byte cap
        },
        timeout=httpx.Timeout(policy.page_timeout_s),
    )


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response read whole: the final URL after redirects, status, headers and body."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def content_type(self) -> str:
        header: str = self.headers.get("content-type", "")
        return header.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        header: str = self.headers.get("content-type", "")
        for part in header.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip("\"'")
        return None


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    policy: BrowserPolicy,
    *,
    follow_redirects: bool = True,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> Fetched:
    """Fetch ``url`` under the policy; redirects followed hop by hop when asked.

    Raises:
        PolicyDenied: a hop's scheme, domain or address is refused (before connecting to it).
        ToolTimeout: the page took longer than ``page_timeout_s`` in all.
        ToolError: too many redirects, a page over ``max_page_bytes``, or a network failure.
    """
    try:
        with anyio.fail_after(policy.page_timeout_s):
            return await _fetch_hops(
                client, url, policy, follow_redirects, method, headers, content
            )
    except TimeoutError as exc:
        raise ToolTimeout(
            f"the page did not load within {policy.page_timeout_s:g} s (page_timeout_s)"
        ) from exc
    except httpx.HTTPError as exc:
        raise ToolError(f"{type(exc).__name__}: {exc or 'network error'}") from exc


async def _fetch_hops(
    client: httpx.AsyncClient,
    url: str,
    policy: BrowserPolicy,
    follow: bool,
    method: str,
    headers: dict[str, str] | None,
    content: bytes | None,
) -> Fetched:
    for _hop in range(policy.max_redirects + 1):
        check_url(url, policy)
        request = client.build_request(method, url, headers=headers, content=content)
        response = await client.send(request, stream=True)
        try:
            location = response.headers.get("location")
            if follow and response.status_code in _REDIRECTS and location:
                url = urljoin(url, location)
                if response.status_code == 303 or method == "POST":
                    method, content = "GET", None
                continue
            body = await _read_capped(response, policy.max_page_bytes)
            return Fetched(url, response.status_code, response.headers, body)
        finally:
            await response.aclose()
    raise ToolError(f"too many redirects (more than {policy.max_redirects}, max_redirects)")


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ToolError(f"the page is {int(declared)} bytes, over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():  # raw: a small gzip bomb can't expand past us
        size += len(chunk)
        if size > limit:
            raise ToolError(f"the page is larger than the limit of {limit} bytes (max_page_bytes)")
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = response.headers.get("content-encoding", "").lower()
    if encoding in ("", "identity"):
        return raw
    return _decode_capped(raw, encoding, limit)


def _decode_capped(raw: bytes, encoding: str, limit: int) -> bytes:
    import zlib

    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise ToolError(f"unsupported content-encoding {encoding!r}")
    wbits = 31 if "gzip" in encoding else 15
    try:
        decoder = zlib.decompressobj(wbits)
        out = decoder.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise ToolError(f"corrupt {encoding} body: {exc}") from exc
    if len(out) > limit:
        raise ToolError(f"the page is larger than the limit of {limit} bytes (max_page_bytes)")
    return out
