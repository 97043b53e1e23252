"""Render a finished run as a training :class:`~agent.demo_model.example.Example`.

The token and mask conventions are described in :mod:`agent.demo_model.example`.
"""

from __future__ import annotations

from collections.abc import Sequence

import openai_harmony as oh

from agent.demo_model.example import Example
from agent.harmony.codec import HarmonyCodec


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
