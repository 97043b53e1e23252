"""Policies: what an agent may do, checked before every tool call.

    from policies import Policy, RunPolicy
    policy = Policy.load("strict")             # or a YAML file, or Policy(...) in Python
    run_policy = RunPolicy(policy, approver)   # one per run: counters, budgets, approvals

The loop asks :meth:`RunPolicy.authorize` before every dispatch; toolkits take the pieces only
they can enforce from ``ctx.policy``: :mod:`policies.network` (browser URLs, redirects,
sub-requests), :mod:`policies.paths` (apply_patch paths and symlinks), ``config.sandbox``
(python limits), and :meth:`RunPolicy.charge` for budgets they measure.
"""

from __future__ import annotations

from policies.approval import AutoApprover as AutoApprover
from policies.approval import TerminalApprover as TerminalApprover
from policies.config import Action as Action
from policies.config import ApplyPatchPolicy as ApplyPatchPolicy
from policies.config import ApprovalPolicy as ApprovalPolicy
from policies.config import BrowserPolicy as BrowserPolicy
from policies.config import Budgets as Budgets
from policies.config import Policy as Policy
from policies.config import RedactionPolicy as RedactionPolicy
from policies.config import SandboxPolicy as SandboxPolicy
from policies.loader import PolicyFileError as PolicyFileError
from policies.network import check_url as check_url
from policies.network import domain_allowed as domain_allowed
from policies.network import ip_allowed as ip_allowed
from policies.network import resolve_and_check as resolve_and_check
from policies.paths import path_allowed as path_allowed
from policies.paths import resolve_in_workspace as resolve_in_workspace
from policies.presets import PRESETS as PRESETS
from policies.redaction import Redactor as Redactor
from policies.redaction import redaction_processor as redaction_processor
from policies.run import Approval as Approval
from policies.run import Approver as Approver
from policies.run import PolicyDecision as PolicyDecision
from policies.run import RunPolicy as RunPolicy
