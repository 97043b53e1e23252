"""Choosing a sandbox kind by name (config or policy ``sandbox.kind``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import UserError
from sandboxes.base import Sandbox, SandboxKind, SandboxLimits

if TYPE_CHECKING:
    from policies.config import SandboxPolicy


def make_sandbox(kind: SandboxKind | str, limits: SandboxLimits, *,
                 allow_local: bool = False) -> Sandbox:
    """A new, not yet started sandbox. Raises UserError for an unknown or refused kind."""
    try:
        kind = SandboxKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in SandboxKind)
        raise UserError(f"unknown sandbox kind {kind!r}; known: {known}") from None
    if kind is SandboxKind.DOCKER:
        from sandboxes.docker import DockerSandbox

        return DockerSandbox(limits)
    if kind is SandboxKind.BUBBLEWRAP:
        from sandboxes.bubblewrap import BubblewrapSandbox

        return BubblewrapSandbox(limits)
    from sandboxes.local import LocalSandbox

    return LocalSandbox(limits, allow=allow_local)


def sandbox_for(policy: SandboxPolicy, kind: SandboxKind | str | None = None) -> Sandbox:
    """The sandbox a policy asks for (``kind`` overrides ``policy.kind``)."""
    return make_sandbox(kind or policy.kind, SandboxLimits.from_policy(policy),
                        allow_local=policy.allow_local)
