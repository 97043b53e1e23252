"""Toolkits: the namespaces a model can call (browser, python, apply_patch, functions)."""

from __future__ import annotations

from toolkits.base import RunContext as RunContext
from toolkits.base import ToolCall as ToolCall
from toolkits.base import Toolkit as Toolkit
from toolkits.base import ToolNamespace as ToolNamespace
from toolkits.base import ToolReply as ToolReply
from toolkits.base import ToolSession as ToolSession
from toolkits.base import ToolSpec as ToolSpec
