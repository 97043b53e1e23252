"""One training example: the tokens of a finished run and a loss mask over what the model wrote.

JSONL format, one object per line::

    {"tokens": [int, ...],   # the run rendered for training (o200k_harmony ids)
     "mask":   [0|1, ...],   # same length; 1 on the tokens the model generates at inference
     "family": "python",     # python | browser | apply_patch | functions
     "task":   "What is ...",# the user's message
     "answer": "391"}        # the ground truth the final answer was checked against

(:mod:`agent.demo_model.render` makes them.) The tokens are
``render_conversation_for_training`` of the run's messages with
``auto_drop_analysis=False``: these are single-turn runs, so every analysis message and tool call
belongs to the turn being learned (harmony's default drops them, which would remove the tool use).
The last message is the final answer and ends in ``<|return|>``.

The mask is 1 exactly on the completion tokens of assistant messages: everything after
``<|start|>assistant`` for a message that follows a user/tool message (the prompt supplies that
prefix at inference), and the whole message, ``<|start|>assistant`` included, when it follows
another assistant message inside the same completion. System, developer, user and tool messages
are 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Example:
    tokens: list[int]
    mask: list[int]
    family: str
    task: str
    answer: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Example:
        return cls(**json.loads(line))
