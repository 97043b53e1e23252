"""A streaming parser for assistant completions, strict where openai-harmony is lenient.

openai-harmony's parser accepts unknown channels, missing channels and special tokens inside
message text, and raises an untyped error on others. An agent needs the opposite: every fault
named precisely (so the model can be told) and every complete message before the fault kept. This
parser works on token ids, one at a time, and raises :class:`agent.errors.HarmonyParseError`.

Usage::

    parser = CompletionParser(encoding)
    for token in tokens:
        for delta in parser.feed(token):   # text deltas of the current message
            ...
    messages = parser.finish()             # raises HarmonyParseError if incomplete
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import openai_harmony as oh

from agent.errors import HarmonyParseError

VALID_CHANNELS = ("analysis", "commentary", "final")
_SPECIALS = ("start", "end", "message", "channel", "constrain", "return", "call")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One complete assistant message. ``end`` is "end", "call" or "return"."""

    channel: str
    recipient: str | None
    content_type: str | None
    text: str
    end: str
    role: str = "assistant"

    @property
    def is_tool_call(self) -> bool:
        # gpt-oss often calls tools from the analysis channel: the recipient decides, not the channel.
        return self.recipient is not None and self.recipient != "assistant"

    def to_harmony(self) -> oh.Message:
        msg = oh.Message.from_role_and_content(oh.Role(self.role), self.text).with_channel(
            self.channel
        )
        if self.recipient:
            msg = msg.with_recipient(self.recipient)
        if self.content_type:
            msg = msg.with_content_type(self.content_type)
        return msg


@dataclass(frozen=True, slots=True)
class TextDelta:
    channel: str
    recipient: str | None
    text: str


class _State(enum.Enum):
    START = "expecting <|start|>"
    ROLE = "expecting the role after <|start|>"
    HEADER = "reading a message header"
    CONTENT = "reading message content"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Header:
    channel: str
    recipient: str | None
    content_type: str | None


class SpecialTokens:
    """Ids of the Harmony special tokens in one encoding."""

    def __init__(self, encoding: oh.HarmonyEncoding) -> None:
        ids = {
            n: encoding.encode(f"<|{n}|>", allowed_special={f"<|{n}|>"}, disallowed_special=())[0]
            for n in _SPECIALS
        }
        self.by_id = {v: k for k, v in ids.items()}
        self.start, self.end, self.message = ids["start"], ids["end"], ids["message"]
        self.channel, self.constrain = ids["channel"], ids["constrain"]
        self.ret, self.call = ids["return"], ids["call"]


def parse_header(text: str) -> Header:
    """Parse a header such as ``<|channel|>commentary to=functions.x <|constrain|>json``.

    The recipient may stand before or after the channel; both give the same header.

    Raises:
        ValueError: what is wrong with the header, in words the model can act on.
    """
    before, after = _split_channel(text)
    after, constrain_sep, constraint = after.partition("<|constrain|>")
    words = _WORD.findall(after)
    if not words:
        raise ValueError("the channel name after <|channel|> is missing")
    channel, rest = words[0], words[1:]
    if channel not in VALID_CHANNELS:
        raise ValueError(
            f"unknown channel {channel!r}: valid channels are {', '.join(VALID_CHANNELS)}"
        )
    if any(not w.startswith("to=") for w in _WORD.findall(before)):
        raise ValueError(f"unexpected text {before.strip()!r} before <|channel|> in the header")
    recipients = [w[3:] for w in [*_WORD.findall(before), *rest] if w.startswith("to=")]
    if len(recipients) > 1 or (recipients and not recipients[0]):
        raise ValueError(f"the header names {len(recipients)} recipients; a message has at most one")
    others = [w for w in rest if not w.startswith("to=")]
    content_type = _content_type(others, constraint if constrain_sep else None)
    return Header(channel, recipients[0] if recipients else None, content_type)


def _split_channel(text: str) -> tuple[str, str]:
    """The header's text before and after its one ``<|channel|>``."""
    if not text.strip():
        raise ValueError("the message header is empty: it needs <|channel|> and a channel name")
    if "<|channel|>" not in text:
        raise ValueError(
            f"the message header {text.strip()!r} has no <|channel|>: every message needs one "
            f"of the channels {', '.join(VALID_CHANNELS)}"
        )
    before, _, after = text.partition("<|channel|>")
    if "<|channel|>" in after:
        raise ValueError(f"the message header {text!r} has <|channel|> twice")
    return before, after


def _content_type(others: list[str], constraint: str | None) -> str | None:
    """``<|constrain|>json`` or a bare word such as ``code``; anything more is garbled."""
    if constraint is not None:
        c_words = _WORD.findall(constraint)
        if len(c_words) != 1:
            raise ValueError(
                f"<|constrain|> must be followed by one word (e.g. json), got {constraint!r}"
            )
        if others:
            raise ValueError(f"unexpected text {' '.join(others)!r} in the header")
        return "<|constrain|>" + c_words[0]
    if len(others) > 1:
        raise ValueError(f"unexpected text {' '.join(others)!r} in the header")
    return others[0] if others else None


class CompletionParser:
    """Parses the tokens an assistant produces after ``<|start|>assistant``."""

    def __init__(self, encoding: oh.HarmonyEncoding, specials: SpecialTokens | None = None):
        self._enc = encoding
        self._sp = specials or SpecialTokens(encoding)
        self.messages: list[ParsedMessage] = []
        self._state = _State.HEADER
        self._tokens: list[int] = []  # every token fed, for raw_text
        self._header: list[int] = []
        self._content: list[int] = []
        self._pending: list[int] = []  # content tokens not yet decodable (split UTF-8)
        self._current: Header | None = None

    @property
    def current(self) -> Header | None:
        """The header of the message being read, once its <|message|> arrived."""
        return self._current

    def raw_text(self) -> str:
        return self._enc.decode(self._tokens)

    def _fail(self, reason: str) -> HarmonyParseError:
        cur = self._current
        return HarmonyParseError(
            reason, raw_text=self.raw_text(), messages=tuple(self.messages),
            recipient=cur.recipient if cur else None, channel=cur.channel if cur else None,
        )

    def feed(self, token: int) -> list[TextDelta]:
        """Consume one token; returns the text deltas it completes (usually zero or one)."""
        self._tokens.append(token)
        special = self._sp.by_id.get(token)
        state = self._state
        if state is _State.DONE:
            end = self.messages[-1].end if self.messages else "end"
            raise self._fail(f"text after <|{end}|>: a message ending in <|{end}|> must be last")
        if state is _State.CONTENT:
            return self._feed_content(token, special)
        if state is _State.START:
            if special != "start":
                raise self._fail(f"expected <|start|> to begin a new message, got {self._show(token)}")
            self._state = _State.ROLE
            return []
        if special in (None, "channel", "constrain"):
            self._header.append(token)
            return []
        if special == "message":
            self._open_message()
            return []
        raise self._fail(
            f"missing <|message|>: the header ended with {self._show(token)}; a message is "
            "<|channel|>NAME [to=RECIPIENT] [<|constrain|>TYPE]<|message|>TEXT"
        )

    def _show(self, token: int) -> str:
        special = self._sp.by_id.get(token)
        return f"<|{special}|>" if special else repr(self._enc.decode([token]))

    def _open_message(self) -> None:
        text = self._enc.decode(self._header)
        if self._state is _State.ROLE:
            stripped = text.lstrip()
            if not stripped.startswith("assistant"):
                role = stripped.partition("<|")[0].strip()
                raise self._fail(
                    f"a new message must start with <|start|>assistant, got <|start|>{role!r}"
                )
            text = stripped[len("assistant") :]
        try:
            self._current = parse_header(text)
        except ValueError as exc:
            raise self._fail(str(exc)) from None
        self._state = _State.CONTENT
        self._header.clear()

    def _feed_content(self, token: int, special: str | None) -> list[TextDelta]:
        assert self._current is not None
        if special is None:
            self._content.append(token)
            self._pending.append(token)
            try:
                text = self._enc.decode_utf8(self._pending)
            except Exception:  # an incomplete UTF-8 sequence: wait for the next token
                return []
            self._pending.clear()
            return [TextDelta(self._current.channel, self._current.recipient, text)]
        if special not in ("end", "call", "return"):
            raise self._fail(
                f"stray special token <|{special}|> inside the text of a {self._current.channel} "
                "message: end the message with <|end|>, <|call|> or <|return|> first"
            )
        header = self._current
        message = ParsedMessage(
            header.channel, header.recipient, header.content_type,
            self._enc.decode(self._content), special,
        )
        self._check_end(message)
        self.messages.append(message)
        self._content.clear()
        self._pending.clear()
        self._current = None
        self._state = _State.START if special == "end" else _State.DONE
        return []

    def _check_end(self, message: ParsedMessage) -> None:
        if message.end == "call" and not message.is_tool_call:
            raise self._fail("<|call|> ends a message with no recipient: name a tool with to=")
        if message.end == "return" and message.channel != "final":
            raise self._fail(f"<|return|> ends a {message.channel} message; only final messages return")

    def finish(self, *, truncated: bool = False) -> list[ParsedMessage]:
        """End of the completion. Returns the messages, or raises if the last one is incomplete."""
        if self._state in (_State.DONE, _State.START):
            return list(self.messages)
        if truncated:
            raise self._fail(
                f"the completion was cut at the token limit while {self._state.value}; "
                "write a shorter message"
            )
        raise self._fail(f"the completion ended while {self._state.value}")
