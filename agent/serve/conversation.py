"""OpenAI chat messages and Responses input items, rendered as Harmony prompts.

Both APIs map onto the same Harmony conversation, the way gpt-oss was trained to see it: our
system message (identity, reasoning effort, dates), a developer message holding the API's
system/developer text as instructions plus the function tools, then user turns, the assistant's
earlier messages (final answers on ``final``, tool calls as ``commentary to=functions.NAME``)
and tool results as messages from ``functions.NAME``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import openai_harmony as oh

from agent.harmony.codec import HarmonyCodec, ReasoningEffort, SystemSettings
from agent.serve.schemas import ChatBody, ChatMessage, ResponsesBody
from toolkits.base import ToolNamespace, ToolSpec


class BadConversation(ValueError):
    """A request whose messages cannot form a Harmony conversation (HTTP 400)."""


def _assistant(text: str, channel: str) -> oh.Message:
    return oh.Message.from_role_and_content(oh.Role.ASSISTANT, text).with_channel(channel)


def _call(name: str, arguments: str) -> oh.Message:
    return (_assistant(arguments, "commentary").with_recipient(f"functions.{name}")
            .with_content_type("<|constrain|>json"))


def _user(text: str) -> oh.Message:
    return oh.Message.from_role_and_content(oh.Role.USER, text)


def _opening(codec: HarmonyCodec, instructions: Sequence[str], tools: Iterable[ToolSpec],
             effort: ReasoningEffort | None) -> list[oh.Message]:
    spaces = [ToolNamespace("functions", None, tuple(tools), "developer")]
    if not spaces[0].tools:
        spaces = []
    settings = SystemSettings(reasoning_effort=effort or "medium")
    messages = [codec.system_message(settings, spaces)]
    developer = codec.developer_message("\n\n".join(instructions) or None, spaces)
    if developer is not None:
        messages.append(developer)
    return messages


# -- chat completions ----------------------------------------------------------------------------
def chat_prompt(codec: HarmonyCodec, body: ChatBody) -> list[int]:
    """Prompt tokens for a ``/v1/chat/completions`` request. Raises BadConversation."""
    use_tools = body.tools and body.tool_choice != "none"
    tools = [ToolSpec(t.function.name, t.function.description, t.function.parameters)
             for t in body.tools or []] if use_tools else []
    instructions = [m.text() for m in body.messages if m.role in ("system", "developer")]
    messages = _opening(codec, instructions, tools, body.reasoning_effort)
    names: dict[str, str] = {}  # tool_call_id -> function name
    for m in body.messages:
        messages.extend(_chat_message(m, names))
    return codec.render_for_completion(messages)


def _chat_message(m: ChatMessage, names: dict[str, str]) -> list[oh.Message]:
    if m.role in ("system", "developer"):
        return []  # already in the developer message
    if m.role == "user":
        return [_user(m.text())]
    if m.role == "tool":
        if m.tool_call_id is None or m.tool_call_id not in names:
            raise BadConversation(f"tool message with unknown tool_call_id {m.tool_call_id!r}")
        name = names[m.tool_call_id]
        return [HarmonyCodec.tool_message(f"functions.{name}", m.text(), "commentary")]
    out: list[oh.Message] = []
    if m.reasoning_content:
        out.append(_assistant(m.reasoning_content, "analysis"))
    if m.text():
        out.append(_assistant(m.text(), "final" if not m.tool_calls else "commentary"))
    for call in m.tool_calls or []:
        names[call.id] = call.function.name
        out.append(_call(call.function.name, call.function.arguments))
    return out


# -- responses -----------------------------------------------------------------------------------
def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise BadConversation(f"message content must be text or a list of parts, got {content!r}")


def responses_prompt(codec: HarmonyCodec, body: ResponsesBody) -> list[int]:
    """Prompt tokens for a ``/v1/responses`` request. Raises BadConversation."""
    if body.previous_response_id is not None:
        raise BadConversation("previous_response_id is not supported: send the whole input")
    items: list[dict[str, Any]] = (
        [{"role": "user", "content": body.input}] if isinstance(body.input, str) else body.input)
    tools = [ToolSpec(t.name, t.description or "", t.parameters) for t in body.tools]
    if body.tool_choice == "none":
        tools = []
    instructions = [body.instructions] if body.instructions else []
    instructions += [_content_text(i.get("content")) for i in items
                     if i.get("role") in ("system", "developer")]
    effort = body.reasoning.effort if body.reasoning else None
    messages = _opening(codec, instructions, tools, effort)
    names: dict[str, str] = {}
    for item in items:
        messages.extend(_responses_item(item, names))
    return codec.render_for_completion(messages)


def _responses_item(item: dict[str, Any], names: dict[str, str]) -> list[oh.Message]:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        text = _content_text(item.get("content", ""))
        if role in ("system", "developer"):
            return []
        if role == "user":
            return [_user(text)]
        if role == "assistant":
            return [_assistant(text, "final")]
        raise BadConversation(f"unknown message role {role!r}")
    if kind == "function_call":
        names[str(item.get("call_id"))] = str(item["name"])
        return [_call(str(item["name"]), str(item.get("arguments", "")))]
    if kind == "function_call_output":
        call_id = str(item.get("call_id"))
        if call_id not in names:
            raise BadConversation(f"function_call_output for unknown call_id {call_id!r}")
        output = item.get("output", "")
        text = output if isinstance(output, str) else json.dumps(output)
        return [HarmonyCodec.tool_message(f"functions.{names[call_id]}", text, "commentary")]
    if kind == "reasoning":
        text = _content_text(item.get("content") or [])
        return [_assistant(text, "analysis")] if text else []
    raise BadConversation(f"input items of type {kind!r} are not supported")
