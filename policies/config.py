"""The policy as users write it: one pydantic model, loadable from YAML or built in Python.

Sections hold what each toolkit enforces itself (browser network rules, sandbox limits,
apply_patch paths); ``rules`` and ``budgets`` are enforced by the loop through
:class:`policies.run.RunPolicy` before every dispatch.

Example::

    policy = Policy.load("strict")                 # a preset
    policy = Policy.load("policy.yaml")            # a file (may say ``extends: strict``)
    policy = Policy(rules={"browser": Action.DENY}, budgets=Budgets(tool_calls=20))

``Policy()`` equals the ``default`` preset. Bad files raise
:class:`policies.loader.PolicyFileError` with ``file:line: field: message`` lines.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from policies.network import is_host_name, normalize_host, normalize_pattern
from policies.paths import glob_to_regex


class Action(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- validated strings: a bad entry fails at load time with its own location -----------------


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return value


def _domain_pattern(value: str) -> str:
    normalize_pattern(value)
    return value


def _private_entry(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value.strip().strip("[]"), strict=False)
    except ValueError:
        if not is_host_name(normalize_host(value)):  # a host name, e.g. "localhost"
            raise ValueError(
                f"{value!r} is neither an IP address, a network nor a host name"
            ) from None
    return value


def _path_glob(value: str) -> str:
    glob_to_regex(value)
    return value


_RECIPIENT = re.compile(r"^[A-Za-z0-9_*?\-]+(\.[A-Za-z0-9_*?\-]+)*$")


def _recipient_pattern(value: str) -> str:
    if not _RECIPIENT.match(value):
        raise ValueError(
            f"{value!r} is not a recipient pattern like 'browser', 'browser.open', "
            "'functions.*' or 'python'"
        )
    return value


Regex = Annotated[str, AfterValidator(_regex)]
DomainPattern = Annotated[str, AfterValidator(_domain_pattern)]
PrivateEntry = Annotated[str, AfterValidator(_private_entry)]
PathGlob = Annotated[str, AfterValidator(_path_glob)]
RecipientPattern = Annotated[str, AfterValidator(_recipient_pattern)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0)]


# --- sections ----------------------------------------------------------------------------------


class Budgets(_Strict):
    """Per-run limits. None means unlimited. ``calls_per_tool`` keys are recipient patterns."""

    tool_calls: Count | None = 200
    calls_per_tool: dict[RecipientPattern, Count] = Field(default_factory=dict)
    browser_pages: Count | None = 100
    python_cpu_seconds: Annotated[float, Field(ge=0)] | None = 600.0
    python_wall_seconds: Annotated[float, Field(ge=0)] | None = 1800.0
    apply_patch_bytes: Count | None = 5_000_000
    completion_tokens: Count | None = None


class BrowserPolicy(_Strict):
    """Where the browser may go; see :mod:`policies.network` for the pattern syntax."""

    allow_domains: list[DomainPattern] = Field(default_factory=list)  # empty: all not denied
    deny_domains: list[DomainPattern] = Field(default_factory=list)
    schemes: list[str] = Field(default_factory=lambda: ["http", "https"])
    # Private, loopback, link-local and metadata addresses are refused unless listed here
    # (exact host or IP/CIDR, e.g. "127.0.0.1" for a test server).
    allow_private: list[PrivateEntry] = Field(default_factory=list)
    max_page_bytes: Count = 5_000_000
    page_timeout_s: Seconds = 20.0
    max_redirects: Count = 10


class SandboxPolicy(_Strict):
    kind: str = "docker"  # docker | bubblewrap | local
    network: bool = False
    memory_mb: Annotated[int, Field(gt=0)] = 1024
    cpus: Annotated[float, Field(gt=0)] = 1.0
    pids: Annotated[int, Field(gt=0)] = 128
    disk_mb: Annotated[int, Field(gt=0)] = 512
    output_bytes: Annotated[int, Field(gt=0)] = 20_000
    call_timeout_s: Seconds = 120.0
    mounts: dict[str, Literal["ro", "rw"]] = Field(default_factory=dict)  # host path -> mode
    allow_local: bool = False  # the local (unsandboxed) kind needs this explicit opt-in


#: Files that look like secrets or repository internals; apply_patch refuses them by default.
DEFAULT_DENY_PATHS: tuple[str, ...] = (
    ".git/**", "**/.git/**", "**/.env", "**/.env.*", "**/*.pem", "**/*.key", "**/*.p12",
    "**/*.pfx", "**/id_rsa*", "**/id_ecdsa*", "**/id_ed25519*", "**/.ssh/**", "**/*secret*",
    "**/.netrc", "**/.npmrc", "**/.pypirc", "**/.aws/**", "**/.docker/config.json",
    "**/credentials*.json",
)


class ApplyPatchPolicy(_Strict):
    """What apply_patch may touch; see :mod:`policies.paths` for the glob syntax."""

    workspace: Path | None = None  # None: the run's files folder
    allow_paths: list[PathGlob] = Field(default_factory=lambda: ["**"])
    deny_paths: list[PathGlob] = Field(default_factory=lambda: list(DEFAULT_DENY_PATHS))
    max_patch_bytes: Count = 1_000_000


class ApprovalPolicy(_Strict):
    """How ``ask`` is decided when no interactive approver is attached (batch runs).

    ``default`` deny refuses, allow approves; ``approve_matching`` regexes (searched in
    ``"<recipient> <arguments>"``) approve a call the default would refuse. ``remember`` keeps
    "always"/"never" answers for the rest of the run; False asks every time.
    """

    default: Literal[Action.ALLOW, Action.DENY] = Action.DENY
    approve_matching: list[Regex] = Field(default_factory=list)
    remember: bool = True


class RedactionPolicy(_Strict):
    """Secrets replaced in tool output, events and logs: env var values and regexes."""

    # Names of variables whose values are secret; globs, case-insensitive.
    env_vars: list[str] = Field(
        default_factory=lambda: [
            "*_API_KEY", "*_APIKEY", "*_TOKEN", "*_SECRET", "*_SECRET_KEY", "*_ACCESS_KEY",
            "*PASSWORD*",
        ]
    )
    patterns: list[Regex] = Field(
        default_factory=lambda: [
            r"sk-[A-Za-z0-9_\-]{16,}",
            r"gh[pousr]_[A-Za-z0-9]{20,}",
            r"github_pat_[A-Za-z0-9_]{20,}",
            r"hf_[A-Za-z0-9]{20,}",
            r"xox[baprs]-[A-Za-z0-9\-]{10,}",
            r"AKIA[0-9A-Z]{16}",
            r"(?i:bearer)\s+[A-Za-z0-9._\-]{16,}",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        ]
    )
    replacement: str = "[REDACTED]"


class Policy(_Strict):
    """Everything an agent may do. Rules map a recipient pattern to an action.

    Keys are namespaces (``browser``), methods (``browser.open``), or globs (``functions.*``);
    the most specific matching key wins; ``default`` applies when none matches.
    """

    name: str = "default"
    default: Action = Action.ALLOW
    rules: dict[RecipientPattern, Action] = Field(default_factory=dict)
    timeouts_s: dict[RecipientPattern, Seconds] = Field(default_factory=dict)
    default_timeout_s: Seconds = 120.0
    budgets: Budgets = Field(default_factory=Budgets)
    browser: BrowserPolicy = Field(default_factory=BrowserPolicy)
    sandbox: SandboxPolicy = Field(default_factory=SandboxPolicy)
    apply_patch: ApplyPatchPolicy = Field(default_factory=ApplyPatchPolicy)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    redaction: RedactionPolicy = Field(default_factory=RedactionPolicy)

    @classmethod
    def from_name(cls, name: str) -> Policy:
        """A preset: ``strict``, ``default``, ``permissive`` or ``offline``.

        Raises:
            UserError: no preset has that name.
        """
        from policies.presets import preset

        return preset(name)

    @classmethod
    def load(cls, path_or_name: str | Path) -> Policy:
        """A preset name or a YAML file (which may ``extends:`` a preset or another file).

        Raises:
            PolicyFileError: the file is missing, not YAML, or fails validation (with lines).
            UserError: an unknown preset name.
        """
        from policies.loader import load_policy

        return load_policy(path_or_name)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>") -> Policy:
        """Parse YAML text; ``source`` names it in error messages."""
        from policies.loader import policy_from_yaml

        return policy_from_yaml(text, source=source)
