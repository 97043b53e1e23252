"""Where the browser may go: schemes, domains and resolved addresses.

The browser toolkit calls these for the first URL, every redirect hop and every request a page
makes (scripts, images, fetches), so a page cannot reach what the model may not::

    check_url(url, policy.browser)                       # scheme + domain (+ IP literal)
    addrs = await resolve_and_check(host, port, policy.browser)   # every resolved address

Domain patterns (``allow_domains`` / ``deny_domains``) are compared case-insensitively after IDNA
normalisation, with any trailing dot ignored:

* ``example.com``: that host only;
* ``*.example.com``: any subdomain, at any depth, but not ``example.com`` itself;
* ``.example.com``: ``example.com`` and every subdomain;
* ``*`` inside a label (``api-*.example.com``) matches within that label; ``*`` alone matches all.

Deny wins over allow; an empty allow list allows every domain not denied; IP-literal hosts meet
the lists too (``*`` denies them, an allow list must name them). Addresses are refused
when private, loopback, link-local, multicast, reserved, unspecified, shared (CGNAT 100.64/10) or a
cloud metadata endpoint, including IPv4 addresses embedded in IPv6 (mapped, compatible, 6to4,
NAT64, Teredo), unless ``allow_private`` lists the host, the IP or a network containing it. A
metadata address needs an exact entry: allowing ``169.254.0.0/16`` does not open it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import idna

from agent.errors import PolicyDenied, ToolError

if TYPE_CHECKING:
    from policies.config import BrowserPolicy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Endpoints that hand out cloud credentials; never reachable through a broad allow entry.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DNS_TIMEOUT_S = 10.0


# --- hosts and domain patterns ---------------------------------------------------------------


def normalize_host(host: str) -> str:
    """Lower-case ASCII (IDNA/punycode) form of ``host``, trailing dot and IPv6 brackets removed;
    IP literals in their canonical form (``0x7f.1`` -> ``127.0.0.1``).

    Raises:
        ValueError: the host is empty or not a valid IDNA name.
    """
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.rstrip(".")
    if not h:
        raise ValueError("empty host name")
    ip = _ip_literal(h)
    if ip is not None:
        return str(ip)  # one spelling per address: 0x7f.1 and 2130706433 are 127.0.0.1
    if h.isascii():
        return h.lower()
    return _idna(h)


@functools.lru_cache(maxsize=4096)
def _idna(name: str) -> str:
    try:
        return idna.encode(name, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise ValueError(f"invalid international host name {name!r}: {exc}") from exc


def normalize_pattern(pattern: str) -> str:
    """The canonical form of a domain pattern (labels with ``*`` are kept as written, lowered)."""
    p = pattern.strip().rstrip(".").lower()
    if p in ("", "*"):
        if not p:
            raise ValueError("empty domain pattern")
        return p
    if "*" not in p and (ip := _ip_literal(p)) is not None:
        return str(ip)  # compared with hosts in their canonical form
    lead = "." if p.startswith(".") else ""
    labels = p[len(lead):].split(".")
    if any(not label for label in labels):
        raise ValueError(f"domain pattern {pattern!r} has an empty label")
    out = [label if "*" in label or label.isascii() else _idna(label) for label in labels]
    bad = [label for label in out if not _LABEL.fullmatch(label)]
    if bad:
        raise ValueError(f"domain pattern {pattern!r} has an invalid label {bad[0]!r}")
    return lead + ".".join(out)


_LABEL = re.compile(r"[a-z0-9_*\-]+")


def is_host_name(host: str) -> bool:
    """Whether ``host`` (normalised) is a syntactically valid DNS name."""
    return all(_LABEL.fullmatch(label) and "*" not in label for label in host.split("."))


@functools.lru_cache(maxsize=1024)
def _pattern_re(pattern: str) -> re.Pattern[str]:
    p = normalize_pattern(pattern)
    if p == "*":
        return re.compile(r".+")
    if p.startswith("."):
        return re.compile(r"(?:[^.]+\.)*" + re.escape(p[1:]))
    prefix = ""
    if p.startswith("*."):
        prefix, p = r"(?:[^.]+\.)+", p[2:]
    body = r"\.".join(
        "[^.]*".join(re.escape(piece) for piece in label.split("*")) for label in p.split(".")
    )
    return re.compile(prefix + body)


def domain_matches(host: str, pattern: str) -> bool:
    """Whether a normalised ``host`` matches one domain ``pattern`` (see the module docstring)."""
    return _pattern_re(pattern).fullmatch(host) is not None


def domain_allowed(host: str, policy: BrowserPolicy) -> tuple[bool, str]:
    """Check ``host`` against the deny then allow lists. Returns (allowed, reason)."""
    try:
        h = normalize_host(host)
    except ValueError as exc:
        return False, str(exc)
    for pattern in policy.deny_domains:
        if domain_matches(h, pattern):
            return False, f"domain {h} matches deny_domains entry {pattern!r}"
    if not policy.allow_domains:
        return True, f"domain {h} is not denied (no allow list)"
    for pattern in policy.allow_domains:
        if domain_matches(h, pattern):
            return True, f"domain {h} matches allow_domains entry {pattern!r}"
    return False, f"domain {h} is not in allow_domains ({', '.join(policy.allow_domains)})"


# --- addresses -------------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, bool]:
    """The IPv4 address an IPv6 address carries, and whether the IPv6 form is a mere encoding.

    Mapped, compatible and NAT64 addresses reach exactly the IPv4 address (judge that alone);
    6to4 and Teredo addresses are IPv6 destinations of their own (judge both).
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, True
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), True
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip)), True
    if ip.sixtofour is not None:
        return ip.sixtofour, False
    if ip.teredo is not None:
        return ip.teredo[1], False
    return None, False


def _category(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address, or None when it is."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared (CGNAT 100.64.0.0/10)", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("not globally routable", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _is_metadata(ip: IPAddress) -> bool:
    embedded = _embedded_ipv4(ip)[0] if isinstance(ip, ipaddress.IPv6Address) else None
    return ip in METADATA_ADDRESSES or embedded in METADATA_ADDRESSES


def _listed(ip: IPAddress, policy: BrowserPolicy, *, exact: bool) -> str | None:
    for entry in policy.allow_private:
        try:
            net = ipaddress.ip_network(entry.strip().strip("[]"), strict=False)
        except ValueError:
            continue  # a host name entry; matched by resolve_and_check
        if net.version == ip.version and ip in net and (not exact or net.num_addresses == 1):
            return entry
    return None


def ip_allowed(ip: IPAddress, policy: BrowserPolicy) -> tuple[bool, str]:
    """Whether the browser may connect to ``ip``. Returns (allowed, reason).

    Refuses non-public addresses (see the module docstring) unless ``policy.allow_private`` has an
    IP or CIDR entry containing it, or the IPv4 address it carries (an exact entry for metadata
    addresses).
    """
    embedded, encoding_only = (
        _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else (None, False)
    )
    # The carried IPv4 address is what a connection really reaches, so it names the reason.
    for candidate in (embedded, None if encoding_only else ip):
        if candidate is None or (why := _category(candidate)) is None:
            continue
        metadata = candidate in METADATA_ADDRESSES or ip in METADATA_ADDRESSES
        entry = _listed(candidate, policy, exact=metadata)
        if entry is None and embedded is not None:
            entry = _listed(ip if candidate is embedded else embedded, policy, exact=metadata)
        if entry is None:
            shown = f"{ip} (carrying {candidate})" if candidate is not ip else str(ip)
            return False, f"address {shown} is {why}; add it to browser.allow_private to permit it"
        return True, f"address {ip} is {why} but allowed by allow_private entry {entry!r}"
    return True, f"address {ip} is public"


# --- URLs and resolution ---------------------------------------------------------------------


def _ip_literal(host: str) -> IPAddress | None:
    """Parse an IP literal the way browsers do (also ``2130706433``, ``0x7f.1``, ``0177.0.0.1``)."""
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:
        pass
    parts = h.rstrip(".").split(".")
    if not parts or len(parts) > 4 or not all(parts):
        return None
    try:
        nums = [_ipv4_number(p) for p in parts]
    except ValueError:
        return None  # a name, not an address (WHATWG: only numeric parts make an IPv4 host)
    *head, last = nums
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]+|[0-9]+")


def _ipv4_number(part: str) -> int:
    """One part of a browser-style IPv4 host (hex ``0x7f``, octal ``0177``, decimal)."""
    if not _IPV4_PART.fullmatch(part):
        raise ValueError(part)
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if part[0] == "0" and len(part) > 1:
        return int(part[1:], 8)
    return int(part, 10)


def check_url(url: str, policy: BrowserPolicy) -> None:
    """Refuse ``url`` unless its scheme is allowed and its host passes the domain/IP rules.

    Host names are checked against the domain lists only; call :func:`resolve_and_check` before
    connecting to check the addresses they resolve to.

    Raises:
        PolicyDenied: with a message saying what was denied and why.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:
        raise PolicyDenied(f"denied {url!r}: not a valid URL ({exc})", rule="browser.url") from exc
    scheme = parts.scheme.lower()
    if scheme not in {s.lower() for s in policy.schemes}:
        raise PolicyDenied(
            f"denied {url!r}: the {scheme or 'missing'}: scheme is not allowed "
            f"(allowed: {', '.join(policy.schemes)})",
            rule="browser.schemes",
        )
    if not host:
        if scheme in ("http", "https", "ws", "wss", "ftp"):
            raise PolicyDenied(f"denied {url!r}: the URL has no host", rule="browser.url")
        return  # e.g. about:blank or data:, when the policy lists those schemes
    # An IP-literal host meets the domain lists too: an allow list admits only what it names,
    # and "*" in deny_domains shuts everything.
    ok, why = domain_allowed(host, policy)
    if not ok:
        raise PolicyDenied(f"denied {url!r}: {why}", rule="browser.domains")
    ip = _ip_literal(host)
    if ip is not None:
        ok, why = ip_allowed(ip, policy)
        if not ok:
            raise PolicyDenied(f"denied {url!r}: {why}", rule="browser.allow_private")


def _host_entries(policy: BrowserPolicy) -> set[str]:
    out = set()
    for entry in policy.allow_private:
        try:
            out.add(normalize_host(entry))
        except ValueError:
            continue
    return out


async def resolve_and_check(host: str, port: int, policy: BrowserPolicy) -> list[str]:
    """Resolve ``host`` and return its addresses, refusing the host if any of them is refused.

    A host named exactly in ``allow_private`` may resolve to private addresses (cloud metadata
    addresses still need an exact IP entry). Every address must pass, not just the first: a
    resolver may hand the browser any of them.

    Raises:
        PolicyDenied: the domain or one of its addresses is refused.
        ToolError: the name could not be resolved (in time).
    """
    try:
        name = normalize_host(host)
    except ValueError as exc:
        raise PolicyDenied(f"denied host {host!r}: {exc}", rule="browser.domains") from exc
    literal = _ip_literal(name)
    ok, why = domain_allowed(name, policy)
    if not ok:
        raise PolicyDenied(f"denied host {name}: {why}", rule="browser.domains")
    named = name in _host_entries(policy)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        addresses = await _resolve(name, port)
    for ip in addresses:
        ok, why = ip_allowed(ip, policy)
        if not ok and not (named and not _is_metadata(ip)):
            raise PolicyDenied(
                f"denied host {name}: it resolves to a refused address: {why}",
                rule="browser.allow_private",
            )
    return list(dict.fromkeys(str(ip) for ip in addresses))


async def _resolve(name: str, port: int) -> list[IPAddress]:
    try:
        with anyio.fail_after(_DNS_TIMEOUT_S):
            infos = await anyio.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise ToolError(f"could not resolve host {name}: DNS timed out") from exc
    except OSError as exc:
        raise ToolError(f"could not resolve host {name}: {exc}") from exc
    out: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        out.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    if not out:
        raise ToolError(f"could not resolve host {name}: no addresses")
    return out
