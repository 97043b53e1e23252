"""How much the policy layer costs per tool call, measured side by side in one run.

    .venv/bin/python benchmarks/bench_policies.py

Prints per-operation times and ratios: redaction pattern by pattern (what Redactor does) against
one alternation regex, ``authorize`` against a bare coroutine call, and the network/path checks
the toolkits make per request.
"""

from __future__ import annotations

import ipaddress
import platform
import random
import re
import string
import time
from collections.abc import Callable

import anyio

from policies import BrowserPolicy, Policy, RedactionPolicy, Redactor, RunPolicy
from policies.config import ApplyPatchPolicy
from policies.network import check_url, ip_allowed
from policies.paths import path_allowed
from toolkits.base import ToolCall


def per_op(fn: Callable[[], object], n: int) -> float:
    """Best of 5 rounds, seconds per call."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def tool_output(size: int) -> str:
    rng = random.Random(0)
    words = ["".join(rng.choices(string.ascii_letters, k=rng.randint(2, 9))) for _ in range(500)]
    text = " ".join(rng.choice(words) for _ in range(size // 5))[:size]
    return text[: size // 2] + " sk-abcdefghijklmnopqrstuvwxyz0123 " + text[size // 2 :]


def bench_redaction() -> None:
    policy = RedactionPolicy()
    secret = "value-of-a-secret-123"
    redactor = Redactor(policy, environ={"X_API_KEY": secret})
    # The other design: every secret and pattern in one alternation, one pass over the text.
    one = re.compile("|".join([re.escape(secret)] + [f"(?:{p})" for p in policy.patterns]))
    text = tool_output(30_000)

    def alternation() -> str:
        return one.sub(policy.replacement, text)

    assert redactor.redact(text) == alternation()
    chosen, other = per_op(lambda: redactor.redact(text), 200), per_op(alternation, 200)
    print(f"redact 30 kB tool output: pattern by pattern (used) {chosen * 1e6:7.1f} us, one "
          f"alternation {other * 1e6:7.1f} us, alternation/used {other / chosen:5.2f}x")


def bench_authorize() -> None:
    rules = {f"functions.tool_{i}": "allow" for i in range(50)} | {"browser": "ask",
                                                                   "python": "allow"}
    rp = RunPolicy(Policy.model_validate({"rules": rules, "budgets": {"tool_calls": None}}))
    call = ToolCall("python", "python", None, "print(1)")

    async def noop(c: ToolCall) -> None:
        return None

    async def main() -> tuple[float, float]:
        n = 5_000
        out = []
        for fn in (rp.authorize, noop):
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(n):
                    await fn(call)
                best = min(best, (time.perf_counter() - start) / n)
            out.append(best)
        return out[0], out[1]

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # as a quiet run
    authorize, bare = anyio.run(main)
    print(f"authorize (52 rules, decision logged at info, filtered): {authorize * 1e6:6.1f} us, "
          f"bare coroutine {bare * 1e6:5.2f} us, ratio {authorize / bare:6.1f}x")


def bench_checks() -> None:
    browser = BrowserPolicy(allow_domains=[f"*.site{i}.example" for i in range(50)],
                            deny_domains=["*.ads.example"])
    url = "https://www.site49.example/a/b?c=d"
    ip = ipaddress.ip_address("93.184.216.34")
    patch = ApplyPatchPolicy()
    t_url = per_op(lambda: check_url(url, browser), 20_000)
    t_ip = per_op(lambda: ip_allowed(ip, browser), 20_000)
    t_path = per_op(lambda: path_allowed("src/pkg/module/file.py", patch), 20_000)
    print(f"check_url (51 domain patterns): {t_url * 1e6:6.1f} us; ip_allowed: {t_ip * 1e6:5.1f} us;"
          f" path_allowed (default 19 deny globs): {t_path * 1e6:5.1f} us")


if __name__ == "__main__":
    print(f"machine: {platform.machine()} {platform.python_implementation()} "
          f"{platform.python_version()}")
    bench_redaction()
    bench_authorize()
    bench_checks()
