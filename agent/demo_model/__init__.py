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
"""

from __future__ import annotations

from agent.demo_model.example import Example as Example
from agent.demo_model.example import to_example as to_example
from agent.demo_model.generate import FAMILIES as FAMILIES
from agent.demo_model.generate import GenerationStats as GenerationStats
from agent.demo_model.generate import generate as generate
from agent.demo_model.script import Task as Task
