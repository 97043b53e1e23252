"""A research agent: searches and reads with the browser, answers with clickable citations.

    python recipes/research.py                       # scripted engine + a recorded browse
    agent run recipes/research.py --engine local:/models/gpt-oss-20b

On the scripted engine the browser replays ``data/research_recording.jsonl`` (no network, no API
key). On a real engine it searches the web with the configured backend (You.com by default:
set ``YDC_API_KEY``; or ``OSS_AGENT_RESEARCH_SEARCH=exa`` with ``EXA_API_KEY``). The model cites
what it read as ``【cursor†Lstart-Lend】``; ``agent run`` turns those into links.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent import Agent, Engine
from agent.engine.spec import is_scripted
from policies import Policy
from toolkits.browser import BrowserConfig, BrowserToolkit

TASK = "Under which license is gpt-oss released? Cite your source."
RECORDING = Path(__file__).parent / "data" / "research_recording.jsonl"


def build_agent(engine: Engine) -> Agent:
    if is_scripted(engine):
        config = BrowserConfig(search="recorded", open="recorded", replay_from=RECORDING)
    else:
        config = BrowserConfig(search=os.environ.get("OSS_AGENT_RESEARCH_SEARCH", "youcom"))
    return Agent(engine, [BrowserToolkit(config)], policy=Policy.load("default"),
                 instructions="Research the question with the browser, then answer in one or "
                              "two sentences, citing each fact as 【cursor†Lstart-Lend】.")


SCRIPT = [
    '<|channel|>analysis to=browser.search <|constrain|>json<|message|>'
    '{"query": "gpt-oss license"}<|call|>',
    '<|channel|>analysis<|message|>The first result is the announcement; open it.<|end|>'
    '<|start|>assistant<|channel|>analysis to=browser.open <|constrain|>json<|message|>'
    '{"id": 0}<|call|>',
    "<|channel|>final<|message|>gpt-oss (both gpt-oss-120b and gpt-oss-20b) is released under "
    "the Apache 2.0 license【1†L7】.<|return|>",
]

if __name__ == "__main__":
    from agent.cli.run import recipe_main

    raise SystemExit(recipe_main(__file__))
