"""Browser network rules: domain patterns (property-tested), addresses, URLs, resolution."""

from __future__ import annotations

import fnmatch
import ipaddress

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.errors import PolicyDenied, ToolError
from policies.config import BrowserPolicy
from policies.network import (
    check_url,
    domain_allowed,
    domain_matches,
    ip_allowed,
    normalize_host,
    resolve_and_check,
)

# Few examples, no deadline: CI has two busy cores and these run on every push.
FAST = settings(max_examples=50, deadline=None)

label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
# Names only: all-numeric names are IP addresses to a browser (1.2 is 1.0.0.2), tested apart.
domain = st.lists(label, min_size=1, max_size=4).map(".".join).filter(
    lambda d: normalize_host(d) == d
)


def _case_variants(host: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(host), max_size=len(host)).map(
        lambda flips: "".join(c.upper() if f else c for c, f in zip(host, flips, strict=True))
    )


# --- domain patterns: properties --------------------------------------------------------------


@FAST
@given(domain, st.data())
def test_exact_pattern_matches_itself_in_any_case_and_with_trailing_dot(d: str, data) -> None:
    shown = data.draw(_case_variants(d)) + data.draw(st.sampled_from(["", "."]))
    assert domain_allowed(shown, BrowserPolicy(allow_domains=[d]))[0]
    assert domain_allowed(d, BrowserPolicy(allow_domains=[shown]))[0]


@FAST
@given(domain, domain)
def test_exact_pattern_matches_no_other_host(a: str, b: str) -> None:
    assert domain_matches(normalize_host(b), a) == (normalize_host(a) == normalize_host(b))


@FAST
@given(domain, st.lists(label, min_size=1, max_size=3).map(".".join))
def test_star_dot_matches_every_subdomain_but_not_the_apex(d: str, sub: str) -> None:
    assert domain_matches(f"{sub}.{d}", f"*.{d}")
    assert not domain_matches(d, f"*.{d}")
    assert not domain_matches(f"{sub}{d}", f"*.{d}") or f"{sub}{d}".endswith("." + d)


@FAST
@given(domain, st.lists(label, max_size=3).map(".".join))
def test_leading_dot_matches_apex_and_subdomains(d: str, sub: str) -> None:
    host = f"{sub}.{d}" if sub else d
    assert domain_matches(host, f".{d}")


@FAST
@given(st.lists(label, min_size=1, max_size=4), st.lists(label, min_size=1, max_size=4), st.data())
def test_label_wildcards_agree_with_per_label_fnmatch(pattern_labels, host_labels, data) -> None:
    # Put a '*' into some labels of the pattern; a '*' never crosses a dot.
    starred = [
        lab[: data.draw(st.integers(0, len(lab)))] + "*" if data.draw(st.booleans()) else lab
        for lab in pattern_labels
    ]
    if starred[0] == "*":
        starred[0] = "x*"  # a leading "*." label has its own (multi-label) meaning
    pattern, host = ".".join(starred), ".".join(host_labels)
    assume(normalize_host(host) == host and normalize_host(pattern) == pattern)  # not IP forms
    expected = len(starred) == len(host_labels) and all(
        fnmatch.fnmatchcase(h, p) for h, p in zip(host_labels, starred, strict=True)
    )
    assert domain_matches(host, pattern) == expected


@FAST
@given(domain, st.lists(domain, max_size=3), st.lists(domain, max_size=3))
def test_deny_wins_and_empty_allow_list_allows_all_not_denied(host, allow, deny) -> None:
    policy = BrowserPolicy(allow_domains=allow, deny_domains=deny)
    ok, reason = domain_allowed(host, policy)
    assert ok == ((host not in deny) and (not allow or host in allow))
    assert host in reason
    both = BrowserPolicy(allow_domains=[host], deny_domains=[host])
    assert domain_allowed(host, both)[0] is False


# --- domain patterns: examples ----------------------------------------------------------------


def test_idna_hosts_and_patterns_compare_in_punycode() -> None:
    policy = BrowserPolicy(allow_domains=["*.BÜCHER.de"], deny_domains=["bad.xn--bcher-kva.de"])
    assert normalize_host("Bücher.DE.") == "xn--bcher-kva.de"
    assert domain_allowed("shop.bücher.de", policy)[0]
    assert domain_allowed("SHOP.XN--BCHER-KVA.DE", policy)[0]
    assert not domain_allowed("bad.bücher.de", policy)[0]
    assert not domain_allowed("bücher.de", policy)[0]  # apex is not a subdomain


def test_star_matches_everything_and_invalid_hosts_are_refused() -> None:
    assert domain_allowed("anything.example", BrowserPolicy(allow_domains=["*"]))[0]
    ok, reason = domain_allowed("", BrowserPolicy())
    assert not ok and "empty" in reason


# --- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.5.4", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "CGNAT"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of the metadata address
        ("2002:7f00:1::", "loopback"),  # 6to4 carrying 127.0.0.1
        ("::7f00:1", "loopback"),  # IPv4-compatible
        ("192.0.2.7", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    ok, reason = ip_allowed(ipaddress.ip_address(address), BrowserPolicy())
    assert not ok
    assert why in reason and "allow_private" in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert ip_allowed(ipaddress.ip_address(address), BrowserPolicy())[0]


def test_allow_private_takes_exact_ips_and_networks_and_their_mapped_forms() -> None:
    policy = BrowserPolicy(allow_private=["127.0.0.1", "10.0.0.0/8", "169.254.0.0/16", "[::1]"])
    allowed = ["127.0.0.1", "::ffff:127.0.0.1", "10.9.9.9", "169.254.3.3", "::1"]
    for address in allowed:
        assert ip_allowed(ipaddress.ip_address(address), policy)[0], address
    for address in ["127.0.0.2", "192.168.1.1", "169.254.169.254", "::ffff:169.254.169.254"]:
        assert not ip_allowed(ipaddress.ip_address(address), policy)[0], address
    exact = BrowserPolicy(allow_private=["169.254.169.254"])
    assert ip_allowed(ipaddress.ip_address("169.254.169.254"), exact)[0]


@FAST
@given(st.ip_addresses(v=4))
def test_mapped_ipv6_is_judged_like_the_ipv4_it_carries(ip: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    assert ip_allowed(mapped, BrowserPolicy())[0] == ip_allowed(ip, BrowserPolicy())[0]


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("file:///etc/passwd", "file: scheme is not allowed"),
        ("javascript:alert(1)", "javascript: scheme"),
        ("ftp://example.com/", "ftp: scheme"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1:8080/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number, as browsers read it
        ("http://0x7f.1/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://ads.tracker.example/", "deny_domains"),
    ],
)
def test_check_url_refuses_with_a_reason(url: str, fragment: str) -> None:
    policy = BrowserPolicy(deny_domains=["*.tracker.example"])
    with pytest.raises(PolicyDenied) as info:
        check_url(url, policy)
    assert fragment in info.value.message
    assert "denied" in info.value.message and info.value.rule


def test_check_url_allows_listed_domains_and_schemes() -> None:
    policy = BrowserPolicy(allow_domains=["docs.python.org"], schemes=["https", "about"])
    check_url("https://DOCS.python.org./3/", policy)
    check_url("about:blank", policy)
    with pytest.raises(PolicyDenied, match="not in allow_domains"):
        check_url("https://pypi.org/", policy)
    with pytest.raises(PolicyDenied, match="http: scheme"):
        check_url("http://docs.python.org/", policy)


def test_check_url_allows_a_listed_loopback_server() -> None:
    check_url("http://127.0.0.1:8765/page", BrowserPolicy(allow_private=["127.0.0.1"]))


# --- resolution -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_resolve_refuses_a_name_that_resolves_to_loopback() -> None:
    with pytest.raises(PolicyDenied, match="localhost.*loopback"):
        await resolve_and_check("localhost", 80, BrowserPolicy())


@pytest.mark.anyio
async def test_resolve_allows_a_host_or_ip_listed_in_allow_private() -> None:
    by_name = await resolve_and_check("LOCALHOST.", 80, BrowserPolicy(allow_private=["localhost"]))
    assert by_name and all(ipaddress.ip_address(a).is_loopback for a in by_name)
    by_ip = await resolve_and_check("localhost", 80, BrowserPolicy(allow_private=["127.0.0.0/8", "::1"]))
    assert by_ip == by_name


@pytest.mark.anyio
async def test_resolve_checks_ip_literals_and_denied_domains_without_dns() -> None:
    assert await resolve_and_check("[::1]", 80, BrowserPolicy(allow_private=["::1"])) == ["::1"]
    with pytest.raises(PolicyDenied, match="metadata"):
        await resolve_and_check("169.254.169.254", 80, BrowserPolicy(allow_private=["localhost"]))
    with pytest.raises(PolicyDenied, match="deny_domains"):
        await resolve_and_check("x.blocked.invalid", 80, BrowserPolicy(deny_domains=[".blocked.invalid"]))


@pytest.mark.anyio
async def test_resolve_failure_is_a_tool_error_the_model_can_act_on() -> None:
    with pytest.raises(ToolError, match="could not resolve host"):
        await resolve_and_check("no-such-host.invalid", 80, BrowserPolicy())


def test_ip_literal_hosts_meet_the_domain_lists_too() -> None:
    with pytest.raises(PolicyDenied, match="deny_domains"):
        check_url("http://8.8.8.8/", BrowserPolicy(deny_domains=["*"]))
    with pytest.raises(PolicyDenied, match="not in allow_domains"):
        check_url("http://8.8.8.8/", BrowserPolicy(allow_domains=["example.com"]))
    check_url("http://8.8.8.8/", BrowserPolicy())
    check_url("http://127.0.0.1/", BrowserPolicy(allow_domains=["127.0.0.1"], allow_private=["127.0.0.1"]))


@FAST
@given(st.text("0123456789abcdefx.-", min_size=1, max_size=20))
def test_host_parsing_never_crashes(host: str) -> None:
    ok, reason = domain_allowed(host, BrowserPolicy())
    assert reason


def test_ip_spellings_normalise_to_one_form() -> None:
    assert normalize_host("0x7f.1") == normalize_host("2130706433") == "127.0.0.1"
    assert normalize_host("[::FFFF:127.0.0.1]") == "::ffff:7f00:1"
    policy = BrowserPolicy(allow_domains=["127.0.0.1"], allow_private=["127.0.0.1"])
    check_url("http://0x7f.1:8000/", policy)


@pytest.mark.anyio
async def test_a_listed_host_name_never_opens_metadata() -> None:
    from policies.network import _is_metadata

    assert _is_metadata(ipaddress.ip_address("::ffff:169.254.169.254"))
    with pytest.raises(PolicyDenied, match="metadata"):
        await resolve_and_check("169.254.169.254", 80, BrowserPolicy(allow_private=["169.254.169.254/31"]))
