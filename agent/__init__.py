"""oss-agent: an async agent tool-runtime for OpenAI's open-weight gpt-oss models.

Start here::

    from agent import Agent, ScriptedEngine, tool
"""

from __future__ import annotations

import structlog as _structlog

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
from agent.logs import configure_logging as _configure_logging
from agent.runner import Agent as Agent
from agent.state import RunLimits as RunLimits
from toolkits.functions import tool as tool

__version__ = "0.1.0"

# structlog prints every level to stdout until someone configures it; a library must stay quiet,
# so warnings and errors only, on stderr, unless the application set structlog up itself.
if not _structlog.is_configured():
    _configure_logging(level="warning")
