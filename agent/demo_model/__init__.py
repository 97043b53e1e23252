"""Synthetic training data for a tiny gpt-oss-architecture model that really uses its tools.

Each example is one short task whose answer needs a tool: arithmetic and data questions answered
with ``python``, look-ups on a small generated site through ``browser.search/open/find`` with
citations, file fixes through ``apply_patch``, and custom ``functions.*`` tools declared in the
developer message. Every example is a real :class:`agent.Agent` run: the assistant turns are
written by a :class:`~agent.demo_model.script.Task` as Harmony text, played by a
``FunctionEngine``, and each next turn (and the final answer) is computed from the tool reply the
run actually got, so the transcripts carry our toolkits' exact output formats.

    python -m agent.demo_model.data --out DIR --n 1000 --seed 0 \\
        --families python,browser,apply_patch,functions

writes ``DIR/train.jsonl`` and ``DIR/heldout.jsonl`` (format: :mod:`agent.demo_model.example`).
:mod:`agent.demo_model.train` trains the model on them (on a GPU machine: exports are lazy so
training needs only torch, safetensors and structlog) and :mod:`agent.demo_model.export` writes
the checkpoint that ships in :mod:`agent.demo_model.checkpoint`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Example": "agent.demo_model.example",
    "to_example": "agent.demo_model.render",
    "FAMILIES": "agent.demo_model.generate",
    "GenerationStats": "agent.demo_model.generate",
    "Task": "agent.demo_model.script",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agent.demo_model' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
