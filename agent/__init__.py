"""oss-agent: an async agent tool-runtime for OpenAI's open-weight gpt-oss models.

Start here::

    from agent import Agent, ScriptedEngine, tool

Names are loaded on first use, so ``import agent.errors`` (which toolkits, sandboxes and policies
do) does not pull in the whole runtime, and the import graph stays one-way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import structlog as _structlog

from agent.logs import configure_logging as _configure_logging

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "agent.runner",
    "RunLimits": "agent.state",
    "Engine": "agent.engine.base",
    "EngineRequest": "agent.engine.base",
    "SamplingParams": "agent.engine.base",
    "FunctionEngine": "agent.engine.scripted",
    "ScriptedEngine": "agent.engine.scripted",
    "AgentRunError": "agent.errors",
    "HarmonyParseError": "agent.errors",
    "OssAgentError": "agent.errors",
    "ToolError": "agent.errors",
    "UserError": "agent.errors",
    "Event": "agent.events",
    "RunResult": "agent.events",
    "StopReason": "agent.events",
    "HarmonyCodec": "agent.harmony.codec",
    "SystemSettings": "agent.harmony.codec",
    "tool": "toolkits.functions",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from agent.engine.base import Engine as Engine
    from agent.engine.base import EngineRequest as EngineRequest
    from agent.engine.base import SamplingParams as SamplingParams
    from agent.engine.scripted import FunctionEngine as FunctionEngine
    from agent.engine.scripted import ScriptedEngine as ScriptedEngine
    from agent.errors import AgentRunError as AgentRunError
    from agent.errors import HarmonyParseError as HarmonyParseError
    from agent.errors import OssAgentError as OssAgentError
    from agent.errors import ToolError as ToolError
    from agent.errors import UserError as UserError
    from agent.events import Event as Event
    from agent.events import RunResult as RunResult
    from agent.events import StopReason as StopReason
    from agent.harmony.codec import HarmonyCodec as HarmonyCodec
    from agent.harmony.codec import SystemSettings as SystemSettings
    from agent.runner import Agent as Agent
    from agent.state import RunLimits as RunLimits
    from toolkits.functions import tool as tool

# structlog prints every level to stdout until someone configures it; a library must stay quiet,
# so warnings and errors only, on stderr, unless the application set structlog up itself.
if not _structlog.is_configured():
    _configure_logging(level="warning")
