"""Every error oss-agent raises, in one small hierarchy.

    OssAgentError
    ├── UserError                 bad configuration or input from the person using the library
    │   ├── VocabularyError       the shipped o200k_base vocabulary is missing or corrupt
    │   └── ConfigFileError       a YAML file (policy, batch) with problems, each with its line
    ├── ToolError                 a signal to the model: becomes a tool message it can act on
    │   ├── UnknownRecipient      the model addressed a tool that does not exist
    │   ├── InvalidArguments      arguments were not valid JSON or failed validation
    │   ├── ToolTimeout           the call ran past its time limit
    │   └── PolicyDenied          the policy refused the call (or a budget ran out)
    ├── HarmonyParseError         a completion that is not valid Harmony (carries the raw text)
    └── AgentRunError             a run cannot go on: infrastructure, not the model
        ├── EngineError
        │   └── EngineTimeout
        └── SandboxError
            └── SandboxTimeout

Errors caused by model output (ToolError, HarmonyParseError) are written into the conversation so
the model can recover; the others propagate to the caller. Exceptions carry data and never log
themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


class OssAgentError(Exception):
    """Root of every error raised by oss-agent."""


class UserError(OssAgentError):
    """Bad configuration or input supplied by the user of the library (not by the model)."""


class VocabularyError(UserError):
    """The o200k_base vocabulary could not be loaded."""


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One problem of a configuration file, where it is and what is wrong."""

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigFileError(UserError):
    """A configuration file that cannot be used; ``problems`` lists every problem at once."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class ToolError(OssAgentError):
    """Raised by a tool (or the dispatcher) to tell the model what went wrong.

    The loop turns it into a tool message addressed to the assistant; the run goes on. Tools raise
    it (or a subclass) for anything the model can fix by calling differently.
    """

    def __init__(self, message: str, *, recipient: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.recipient = recipient


class UnknownRecipient(ToolError):
    """The model sent a message to a recipient no toolkit owns."""


class InvalidArguments(ToolError):
    """The call's arguments were not valid JSON or did not match the tool's schema."""


class ToolTimeout(ToolError):
    """A tool call ran past its time limit and was interrupted."""


class PolicyDenied(ToolError):
    """The policy refused a call; the message says what was denied and why."""

    def __init__(self, message: str, *, recipient: str | None = None, rule: str | None = None):
        super().__init__(message, recipient=recipient)
        self.rule = rule


class HarmonyParseError(OssAgentError):
    """A completion that does not follow the Harmony format.

    Attributes:
        reason: what was wrong, in one sentence the model can act on.
        raw_text: the decoded completion as the model produced it.
        messages: the complete, valid messages that came before the fault.
        recipient, channel: of the message that broke, when its header could be read.
    """

    def __init__(
        self,
        reason: str,
        *,
        raw_text: str = "",
        messages: tuple[object, ...] = (),
        recipient: str | None = None,
        channel: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw_text = raw_text
        self.messages = messages
        self.recipient = recipient  # of the broken message, when its header was read
        self.channel = channel


class AgentRunError(OssAgentError):
    """A run cannot continue because of infrastructure (engine, sandbox), not the model."""


class EngineError(AgentRunError):
    """The inference engine failed."""


class EngineTimeout(EngineError):
    """The inference engine did not answer in time."""


class SandboxError(AgentRunError):
    """A sandbox could not be started, reached or cleaned up."""


class SandboxTimeout(SandboxError):
    """A sandbox operation ran past its time limit."""
