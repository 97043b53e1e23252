"""One conversation as Harmony messages and as prompt tokens, grown by appending.

Within a run the prompt only ever grows at its end: the model's own completion tokens are kept
verbatim (they are what the engine's cache holds), and tool replies are rendered one message at a
time. So an engine can reuse every earlier token, and a turn costs the same at turn 200 as at
turn 10. Only a new user turn after a final answer re-renders (Harmony drops the analysis of
finished turns), which is the format's rule, not ours.
"""

from __future__ import annotations

from collections.abc import Sequence

import openai_harmony as oh

from agent.harmony.codec import HarmonyCodec
from agent.harmony.parser import ParsedMessage


class Transcript:
    def __init__(self, codec: HarmonyCodec, opening: Sequence[oh.Message]) -> None:
        self.codec = codec
        self.messages: list[oh.Message] = list(opening)
        self._tokens: list[int] = codec.render_conversation(self.messages) if opening else []
        self._closed = False  # True once a final answer ended the last turn

    def prompt(self) -> tuple[int, ...]:
        """The tokens to complete: the conversation followed by ``<|start|>assistant``."""
        return (*self._tokens, *self.codec.assistant_start)

    def __len__(self) -> int:
        return len(self._tokens)

    def add_completion(self, tokens: Sequence[int], parsed: Sequence[ParsedMessage]) -> None:
        """Append a well-formed completion exactly as the model produced it."""
        self._tokens.extend(self.codec.assistant_start)
        self._tokens.extend(tokens)
        self.messages.extend(m.to_harmony() for m in parsed)
        self._closed = bool(parsed) and parsed[-1].channel == "final"

    def add_messages(self, messages: Sequence[oh.Message]) -> None:
        """Append messages rendered canonically (tool replies, recovered parts of a bad completion)."""
        for message in messages:
            self._tokens.extend(self.codec.render_message(message))
            self.messages.append(message)

    def add_user(self, text: str) -> None:
        """Start a new user turn; after a final answer the history is re-rendered by the rules."""
        self.messages.append(oh.Message.from_role_and_content(oh.Role.USER, text))
        if self._closed:
            self._tokens = self.codec.render_conversation(self.messages)
            self._closed = False
        else:
            self._tokens.extend(self.codec.render_message(self.messages[-1]))

    def to_json(self) -> str:
        """The conversation in openai-harmony's own serialisation."""
        return oh.Conversation.from_messages(self.messages).to_json()
