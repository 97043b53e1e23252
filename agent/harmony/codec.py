"""A thin codec over openai-harmony: the messages that open a conversation, rendering, stop tokens.

Rendering is delegated to openai-harmony so our prompts are token-for-token what gpt-oss was
trained on; parsing is ours (:mod:`agent.harmony.parser`) because it must be strict and typed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import openai_harmony as oh
from pydantic import BaseModel, ConfigDict

from agent.harmony.parser import CompletionParser, SpecialTokens
from agent.harmony.vocab import load_encoding
from toolkits.base import ToolNamespace

ReasoningEffort = Literal["low", "medium", "high"]
_EFFORT = {"low": oh.ReasoningEffort.LOW, "medium": oh.ReasoningEffort.MEDIUM,
           "high": oh.ReasoningEffort.HIGH}
_HARMONY_SPECIALS = frozenset(
    f"<|{n}|>" for n in ("start", "end", "message", "channel", "constrain", "return", "call")
)
DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."


class SystemSettings(BaseModel):
    """What the system message says besides the tools."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_identity: str = DEFAULT_IDENTITY
    reasoning_effort: ReasoningEffort = "medium"
    knowledge_cutoff: str = "2024-06"
    # None: today's date, taken when the conversation starts.
    conversation_start_date: str | None = None
    # False renders the system message without the "# Valid channels" line.
    channels_required: bool = True


def _namespace_config(ns: ToolNamespace) -> oh.ToolNamespaceConfig:
    tools = [oh.ToolDescription.new(t.name, t.description, dict(t.parameters) if t.parameters
                                    is not None else None) for t in ns.tools]
    return oh.ToolNamespaceConfig(name=ns.name, description=ns.description, tools=tools)


class HarmonyCodec:
    """Builds, renders and parses gpt-oss conversations. One per process is plenty."""

    def __init__(self, encoding: oh.HarmonyEncoding | None = None) -> None:
        self.encoding = encoding or load_encoding()
        self.specials = SpecialTokens(self.encoding)
        self.stop_tokens = frozenset(self.encoding.stop_tokens_for_assistant_actions())
        self.assistant_start = tuple(self.encode("<|start|>assistant"))
        self._headers: dict[tuple[str | None, ...], list[int]] = {}

    # -- the opening messages -------------------------------------------------------------
    def system_message(
        self, settings: SystemSettings | None = None, namespaces: Iterable[ToolNamespace] = ()
    ) -> oh.Message:
        s = settings or SystemSettings()
        date = s.conversation_start_date or dt.date.today().isoformat()
        content = (
            oh.SystemContent.new()
            .with_model_identity(s.model_identity)
            .with_reasoning_effort(_EFFORT[s.reasoning_effort])
            .with_knowledge_cutoff(s.knowledge_cutoff)
            .with_conversation_start_date(date)
        )
        if not s.channels_required:
            content = content.with_channel_config(oh.ChannelConfig.require_channels([]))
        for ns in namespaces:
            if ns.placement == "system":
                content = content.with_tools(_namespace_config(ns))
        return oh.Message.from_role_and_content(oh.Role.SYSTEM, content)

    def developer_message(
        self, instructions: str | None = None, namespaces: Iterable[ToolNamespace] = ()
    ) -> oh.Message | None:
        """The developer message, or None when there is nothing to say.

        Developer-placed ``functions`` namespaces are merged into one; a description on such a
        namespace (e.g. apply_patch's format instructions) is appended to the instructions, as
        the reference does. Other developer-placed namespaces (a user's tool class) render as
        namespaces of their own.
        """
        parts = [instructions] if instructions else []
        functions: list[oh.ToolDescription] = []
        others: list[oh.ToolNamespaceConfig] = []
        for ns in namespaces:
            if ns.placement != "developer":
                continue
            if ns.name != "functions":
                others.append(_namespace_config(ns))
                continue
            if ns.description:
                parts.append(ns.description)
            functions.extend(_namespace_config(ns).tools)
        if not parts and not functions and not others:
            return None
        content = oh.DeveloperContent.new()
        if parts:
            # joined as gpt_oss/chat.py joins developer text and the apply_patch instructions
            content = content.with_instructions("\n".join(parts))
        for config in others:
            content = content.with_tools(config)
        if functions:
            content = content.with_function_tools(functions)
        return oh.Message.from_role_and_content(oh.Role.DEVELOPER, content)

    @staticmethod
    def tool_message(recipient: str, text: str, channel: str | None) -> oh.Message:
        """A tool's reply, from ``recipient`` to the assistant, on the call's channel."""
        msg = oh.Message.from_author_and_content(oh.Author.new(oh.Role.TOOL, recipient), text)
        msg = msg.with_recipient("assistant")
        return msg.with_channel(channel) if channel else msg

    # -- rendering --------------------------------------------------------------------------
    def render_for_completion(self, messages: Sequence[oh.Message]) -> list[int]:
        """Tokens of the conversation followed by ``<|start|>assistant``."""
        return self.encoding.render_conversation_for_completion(
            oh.Conversation.from_messages(list(messages)), oh.Role.ASSISTANT
        )

    def render_conversation(self, messages: Sequence[oh.Message]) -> list[int]:
        return self.encoding.render_conversation(oh.Conversation.from_messages(list(messages)))

    def render_for_training(self, messages: Sequence[oh.Message], *,
                            keep_analysis: bool = False) -> list[int]:
        """Tokens for training, the last assistant message ending in ``<|return|>``.

        By the format's rule the analysis before the final answer is dropped; a tool-using
        trajectory keeps it (``keep_analysis=True``), or its tool calls would vanish too.
        """
        config = oh.RenderConversationConfig(auto_drop_analysis=not keep_analysis)
        return self.encoding.render_conversation_for_training(
            oh.Conversation.from_messages(list(messages)), config
        )

    def render_message(self, message: oh.Message) -> list[int]:
        return self.encoding.render(message)

    def render_tool_reply(self, recipient: str, text: str, channel: str | None) -> list[int]:
        """Tokens of :meth:`tool_message`, without the JSON round trip of ``render``.

        The loop renders one reply per turn; this keeps that cost to encoding the reply text.
        Special-token look-alikes in the text stay plain text, as in openai-harmony.
        """
        return self._render_text(("tool", recipient, channel), text,
                                 lambda: self.tool_message(recipient, "", channel))

    def render_user_message(self, text: str) -> list[int]:
        """Tokens of a user message (every run renders its task)."""
        return self._render_text(("user",), text,
                                 lambda: oh.Message.from_role_and_content(oh.Role.USER, ""))

    def _render_text(self, key: tuple[str | None, ...], text: str,
                     empty: Callable[[], oh.Message]) -> list[int]:
        header = self._headers.get(key)
        if header is None:
            header = self.render_message(empty())[:-1]  # all but the closing <|end|>
            self._headers[key] = header
        body = self.encoding.encode(text, allowed_special=set(), disallowed_special=())
        return [*header, *body, self.specials.end]

    def decode(self, tokens: Sequence[int]) -> str:
        return self.encoding.decode(list(tokens))

    def encode(self, text: str) -> list[int]:
        """Tokens of Harmony text, special tokens included (e.g. a scripted completion)."""
        # Naming the few Harmony specials is much faster than "all" (thousands of reserved ones).
        return self.encoding.encode(text, allowed_special=_HARMONY_SPECIALS, disallowed_special=())

    def parser(self) -> CompletionParser:
        return CompletionParser(self.encoding, self.specials)
