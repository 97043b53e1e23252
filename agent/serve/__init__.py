"""Serve any engine over OpenAI-compatible HTTP: completions (token ids), chat, Responses.

    from agent.serve import build_app, running
    async with running(build_app(engine)) as url:
        ...
"""

from __future__ import annotations

from agent.serve.app import build_app as build_app
from agent.serve.server import running as running
from agent.serve.server import serve as serve
