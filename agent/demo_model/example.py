"""One training example: the tokens of a finished run and a loss mask over what the model wrote.

JSONL format, one object per line::

    {"tokens": [int, ...],   # the run rendered for training (o200k_harmony ids)
     "mask":   [0|1, ...],   # same length; 1 on the tokens the model generates at inference
     "family": "python",     # python | browser | apply_patch | functions
     "task":   "What is ...",# the user's message
     "answer": "391"}        # the ground truth the final answer was checked against

The tokens are ``render_conversation_for_training`` of the run's messages with
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import openai_harmony as oh

from agent.harmony.codec import HarmonyCodec


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


def render_for_training(codec: HarmonyCodec, messages: Sequence[oh.Message]) -> list[int]:
    """The training rendering of a single-turn run, analysis and tool calls kept."""
    return codec.render_for_training(messages, keep_analysis=True)


def assistant_mask(codec: HarmonyCodec, messages: Sequence[oh.Message],
                   tokens: Sequence[int]) -> list[int]:
    """The loss mask of :func:`render_for_training`'s ``tokens`` (see the module docstring).

    Messages are found by their ``<|start|>`` tokens (message text never holds special tokens:
    harmony renders look-alikes as plain text). The whole conversation is rendered at once
    because harmony words the system message after the conversation (e.g. which channel
    function calls go to), so messages rendered one by one would not line up.

    Raises:
        ValueError: the tokens do not hold one ``<|start|>`` per message.
    """
    starts = [i for i, t in enumerate(tokens) if t == codec.specials.start]
    if len(starts) != len(messages):
        raise ValueError(f"{len(messages)} messages but {len(starts)} <|start|> tokens: "
                         "the mask cannot be aligned")
    prefix = len(codec.assistant_start)
    mask = [0] * len(tokens)
    previous: oh.Role | None = None
    for k, message in enumerate(messages):
        role = message.author.role
        if role is oh.Role.ASSISTANT:
            begin = starts[k] + (0 if previous is oh.Role.ASSISTANT else prefix)
            stop = starts[k + 1] if k + 1 < len(starts) else len(tokens)
            mask[begin:stop] = [1] * (stop - begin)
        previous = role
    return mask


def to_example(codec: HarmonyCodec, messages: Sequence[oh.Message], *, family: str, task: str,
               answer: str) -> Example:
    tokens = render_for_training(codec, messages)
    return Example(tokens, assistant_mask(codec, messages, tokens), family, task, answer)
