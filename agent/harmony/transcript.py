"""One conversation as Harmony messages and as prompt tokens, grown by appending.

Within a run the prompt only ever grows at its end: the model's own completion tokens are kept
verbatim (they are what the engine's cache holds), and tool replies are rendered one message at a
time. So an engine can reuse every earlier token, and a turn costs the same at turn 200 as at
turn 10. Only a new user turn after a final answer re-renders (Harmony drops the analysis of
finished turns), which is the format's rule, not ours.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import overload

import openai_harmony as oh

from agent.harmony.codec import HarmonyCodec
from agent.harmony.parser import ParsedMessage


class PromptView(Sequence[int]):
    """A read-only snapshot of a growing token list, taken in O(1).

    The transcript only appends to its list (or replaces it whole), so the first ``length``
    tokens never change: the view stays valid without copying the conversation every turn.
    """

    __slots__ = ("_tokens", "_length")

    def __init__(self, tokens: list[int], length: int) -> None:
        self._tokens = tokens
        self._length = length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return self._tokens[: self._length][index]
        if not -self._length <= index < self._length:
            raise IndexError("prompt index out of range")
        return self._tokens[index % self._length]

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(self._tokens, self._length)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PromptView | list | tuple):
            return len(other) == self._length and list(self) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))


class Transcript:
    def __init__(self, codec: HarmonyCodec, opening: Sequence[oh.Message]) -> None:
        self.codec = codec
        self.messages: list[oh.Message] = list(opening)
        self._tokens: list[int] = codec.render_conversation(self.messages) if opening else []
        self._awaiting = False  # True while the list ends with <|start|>assistant
        self._closed = False  # True once a final answer ended the last turn

    @classmethod
    def from_rendered(cls, codec: HarmonyCodec, messages: Sequence[oh.Message],
                      tokens: Sequence[int]) -> Transcript:
        """A transcript from messages already rendered to ``tokens`` (e.g. a cached opening)."""
        transcript = cls(codec, ())
        transcript.messages = list(messages)
        transcript._tokens = list(tokens)
        return transcript

    def prompt(self) -> PromptView:
        """The tokens to complete: the conversation followed by ``<|start|>assistant``."""
        self._open_assistant()
        return PromptView(self._tokens, len(self._tokens))

    def _open_assistant(self) -> None:
        if not self._awaiting:
            self._tokens.extend(self.codec.assistant_start)
            self._awaiting = True

    def _close_assistant(self) -> None:
        if self._awaiting:
            del self._tokens[-len(self.codec.assistant_start) :]
            self._awaiting = False

    def __len__(self) -> int:
        return len(self._tokens) - (len(self.codec.assistant_start) if self._awaiting else 0)

    def add_completion(self, tokens: Sequence[int], parsed: Sequence[ParsedMessage]) -> None:
        """Append a well-formed completion exactly as the model produced it."""
        self._open_assistant()
        self._awaiting = False
        self._tokens.extend(tokens)
        self.messages.extend(m.to_harmony() for m in parsed)
        self._closed = bool(parsed) and parsed[-1].channel == "final"

    def add_messages(self, messages: Sequence[oh.Message]) -> None:
        """Append messages rendered canonically (tool replies, recovered parts of a bad completion)."""
        self._close_assistant()
        for message in messages:
            self._tokens.extend(self.codec.render_message(message))
            self.messages.append(message)

    def add_tool_reply(self, recipient: str, text: str, channel: str | None) -> None:
        """Append a tool's reply to the assistant (the loop's hot path)."""
        self._close_assistant()
        self._tokens.extend(self.codec.render_tool_reply(recipient, text, channel))
        self.messages.append(self.codec.tool_message(recipient, text, channel))

    def add_user(self, text: str) -> None:
        """Start a new user turn; after a final answer the history is re-rendered by the rules."""
        self.messages.append(oh.Message.from_role_and_content(oh.Role.USER, text))
        self._close_assistant()
        if self._closed:
            self._tokens = self.codec.render_conversation(self.messages)
            self._closed = False
        else:
            self._tokens.extend(self.codec.render_user_message(text))

    def to_json(self) -> str:
        """The conversation in openai-harmony's own serialisation."""
        return oh.Conversation.from_messages(self.messages).to_json()
