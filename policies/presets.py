"""Named policies: ``strict``, ``default``, ``permissive``, ``offline``.

Each is a plain :class:`Policy`; YAML files start from one with ``extends: <name>``. The table in
the README (policies/README_SECTION.md) describes them; keep the two in step.
"""

from __future__ import annotations

from agent.errors import UserError
from policies.config import (
    Action,
    ApplyPatchPolicy,
    ApprovalPolicy,
    BrowserPolicy,
    Budgets,
    Policy,
    SandboxPolicy,
)

_STRICT = Policy(
    name="strict",
    default=Action.ASK,  # every call needs a person (or approve_matching in batch runs)
    rules={"browser.find": Action.ALLOW},  # searching the page already opened reads nothing new
    default_timeout_s=60.0,
    budgets=Budgets(
        tool_calls=50, browser_pages=20, python_cpu_seconds=60.0, python_wall_seconds=300.0,
        apply_patch_bytes=200_000, completion_tokens=100_000,
    ),
    browser=BrowserPolicy(schemes=["https"], max_redirects=5, max_page_bytes=2_000_000),
    sandbox=SandboxPolicy(
        memory_mb=512, pids=64, disk_mb=256, output_bytes=10_000, call_timeout_s=60.0,
    ),
    apply_patch=ApplyPatchPolicy(max_patch_bytes=100_000),
    approval=ApprovalPolicy(default=Action.DENY),
)

_DEFAULT = Policy(name="default")

_PERMISSIVE = Policy(
    name="permissive",
    default=Action.ALLOW,
    budgets=Budgets(
        tool_calls=None, browser_pages=None, python_cpu_seconds=None, python_wall_seconds=None,
        apply_patch_bytes=None,
    ),
    # Local networks open; cloud metadata stays closed (it needs an exact allow_private entry).
    browser=BrowserPolicy(
        allow_private=["127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                       "fc00::/7", "localhost"],
    ),
    sandbox=SandboxPolicy(network=True, memory_mb=4096, cpus=2.0, pids=512, disk_mb=4096,
                          output_bytes=100_000, call_timeout_s=600.0),
    apply_patch=ApplyPatchPolicy(deny_paths=[".git/**", "**/.git/**"], max_patch_bytes=10_000_000),
    approval=ApprovalPolicy(default=Action.ALLOW),
)

_OFFLINE = Policy(
    name="offline",
    default=Action.ALLOW,
    rules={"browser": Action.DENY},
    browser=BrowserPolicy(deny_domains=["*"]),  # and toolkits asked directly refuse too
    sandbox=SandboxPolicy(network=False),
)

PRESETS: dict[str, Policy] = {
    p.name: p for p in (_STRICT, _DEFAULT, _PERMISSIVE, _OFFLINE)
}


def preset(name: str) -> Policy:
    """The preset called ``name``.

    Raises:
        UserError: no such preset.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown policy preset {name!r}; presets: {', '.join(PRESETS)}") from None
