"""Sandboxes: where model-written code runs (docker, bubblewrap, local).

Every kind runs the same persistent interpreter (``sandboxes/interpreter.py``) and speaks the
same framed protocol over its stdin/stdout; see :class:`sandboxes.base.Sandbox`.
"""

from __future__ import annotations

from sandboxes.base import ExecResult as ExecResult
from sandboxes.base import FileChange as FileChange
from sandboxes.base import Sandbox as Sandbox
from sandboxes.base import SandboxKind as SandboxKind
from sandboxes.base import SandboxLimits as SandboxLimits
from sandboxes.base import SandboxState as SandboxState
from sandboxes.pool import SandboxPool as SandboxPool
from sandboxes.registry import make_sandbox as make_sandbox
from sandboxes.registry import sandbox_for as sandbox_for
