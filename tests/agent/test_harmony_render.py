"""Rendering parity: our codec's prompts are token for token what openai-harmony renders."""

from __future__ import annotations

import openai_harmony as oh
import pytest

from agent.harmony import HarmonyCodec, SystemSettings, Transcript
from toolkits.base import ToolNamespace, ToolSpec

DATE = "2026-11-25"
codec = HarmonyCodec()
enc = codec.encoding

WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        "days": {"type": "array", "items": {"type": "integer"}},
        "options": {
            "type": "object",
            "properties": {"detail": {"type": "boolean"}, "lang": {"type": "string"}},
        },
    },
    "required": ["location"],
}


def _builtin(cfg: oh.ToolNamespaceConfig) -> ToolNamespace:
    return ToolNamespace(cfg.name, cfg.description,
                         tuple(ToolSpec(t.name, t.description, t.parameters) for t in cfg.tools),
                         "system")


BROWSER = _builtin(oh.ToolNamespaceConfig.browser())
PYTHON = _builtin(oh.ToolNamespaceConfig.python())
FUNCS = ToolNamespace("functions", None, (
    ToolSpec("get_weather", "Gets the weather.", WEATHER),
    ToolSpec("ping", "No arguments."),
), "developer")

_EFFORT = {"low": oh.ReasoningEffort.LOW, "medium": oh.ReasoningEffort.MEDIUM,
           "high": oh.ReasoningEffort.HIGH}


def reference_system(effort: str, browser: bool = False, python: bool = False) -> oh.Message:
    content = (oh.SystemContent.new().with_reasoning_effort(_EFFORT[effort])
               .with_conversation_start_date(DATE))
    if browser:
        content = content.with_browser_tool()
    if python:
        content = content.with_python_tool()
    return oh.Message.from_role_and_content(oh.Role.SYSTEM, content)


def reference_developer(instructions: str | None, functions: bool) -> oh.Message:
    content = oh.DeveloperContent.new()
    if instructions:
        content = content.with_instructions(instructions)
    if functions:
        content = content.with_function_tools([
            oh.ToolDescription.new("get_weather", "Gets the weather.", WEATHER),
            oh.ToolDescription.new("ping", "No arguments."),
        ])
    return oh.Message.from_role_and_content(oh.Role.DEVELOPER, content)


def user(text: str) -> oh.Message:
    return oh.Message.from_role_and_content(oh.Role.USER, text)


def assistant(text: str, channel: str, recipient: str | None = None,
              ctype: str | None = None) -> oh.Message:
    m = oh.Message.from_role_and_content(oh.Role.ASSISTANT, text).with_channel(channel)
    if recipient:
        m = m.with_recipient(recipient)
    return m.with_content_type(ctype) if ctype else m


def ours(effort: str = "medium", spaces: tuple[ToolNamespace, ...] = (),
         instructions: str | None = None) -> list[oh.Message]:
    settings = SystemSettings(reasoning_effort=effort, conversation_start_date=DATE)  # type: ignore[arg-type]
    msgs = [codec.system_message(settings, spaces)]
    dev = codec.developer_message(instructions, spaces)
    return msgs + ([dev] if dev else [])


CALL = assistant('{"location": "Paris"}', "commentary", "functions.get_weather",
                 "<|constrain|>json")
REPLY = codec.tool_message("functions.get_weather", '{"temp": 20}', "commentary")
REF_REPLY = (oh.Message.from_author_and_content(oh.Author.new(oh.Role.TOOL, "functions.get_weather"),
                                                '{"temp": 20}')
             .with_recipient("assistant").with_channel("commentary"))

CASES = {
    "low": (ours("low") + [user("hi")], [reference_system("low"), user("hi")]),
    "medium": (ours("medium") + [user("hi")], [reference_system("medium"), user("hi")]),
    "high": (ours("high") + [user("hi")], [reference_system("high"), user("hi")]),
    "browser": (ours(spaces=(BROWSER,)) + [user("x")], [reference_system("medium", True), user("x")]),
    "python": (ours(spaces=(PYTHON,)) + [user("x")], [reference_system("medium", python=True), user("x")]),
    "both": (ours(spaces=(BROWSER, PYTHON)) + [user("x")],
             [reference_system("medium", True, True), user("x")]),
    "developer": (ours(instructions="Answer in French.") + [user("x")],
                  [reference_system("medium"), reference_developer("Answer in French.", False),
                   user("x")]),
    "functions": (ours(spaces=(FUNCS,), instructions="Be brief.") + [user("x")],
                  [reference_system("medium"), reference_developer("Be brief.", True), user("x")]),
    "functions_only": (ours(spaces=(FUNCS,)) + [user("x")],
                       [reference_system("medium"), reference_developer(None, True), user("x")]),
    "tool_round_trip": (
        ours(spaces=(FUNCS,)) + [user("weather?"), assistant("need weather", "analysis"), CALL,
                                 REPLY],
        [reference_system("medium"), reference_developer(None, True), user("weather?"),
         assistant("need weather", "analysis"), CALL, REF_REPLY]),
    "multi_turn": (
        ours() + [user("a"), assistant("think", "analysis"), assistant("A", "final"), user("b")],
        [reference_system("medium"), user("a"), assistant("think", "analysis"),
         assistant("A", "final"), user("b")]),
    "python_call": (
        ours(spaces=(PYTHON,)) + [user("2+2"), assistant("print(2+2)", "analysis", "python"),
                                  codec.tool_message("python", "4\n", "analysis")],
        [reference_system("medium", python=True), user("2+2"),
         assistant("print(2+2)", "analysis", "python"),
         oh.Message.from_author_and_content(oh.Author.new(oh.Role.TOOL, "python"), "4\n")
         .with_recipient("assistant").with_channel("analysis")]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tokens_equal_openai_harmony(name: str) -> None:
    ours_msgs, ref_msgs = CASES[name]
    ref = enc.render_conversation_for_completion(oh.Conversation.from_messages(ref_msgs),
                                                 oh.Role.ASSISTANT)
    assert codec.render_for_completion(ours_msgs) == ref
    # The incremental transcript (what the loop uses) renders the same prompt.
    assert list(Transcript(codec, ours_msgs).prompt()) == ref


def test_layout_of_a_tool_round_trip() -> None:
    ours_msgs, _ = CASES["tool_round_trip"]
    text = codec.decode(codec.render_for_completion(ours_msgs))
    assert text.startswith("<|start|>system<|message|>You are ChatGPT, a large language model "
                           "trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: "
                           f"{DATE}\n\nReasoning: medium\n\n# Valid channels: analysis, "
                           "commentary, final. Channel must be included for every message.")
    assert "<|start|>developer<|message|># Tools\n\n## functions\n\nnamespace functions {\n\n" \
           "// Gets the weather.\ntype get_weather = (_: {\n// City and country\nlocation: string," in text
    assert text.endswith(
        '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json'
        '<|message|>{"location": "Paris"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>'
        '{"temp": 20}<|end|><|start|>assistant')


def test_analysis_of_finished_turns_is_dropped() -> None:
    ours_msgs, _ = CASES["multi_turn"]
    text = codec.decode(codec.render_for_completion(ours_msgs))
    assert "think" not in text
    assert "<|start|>assistant<|channel|>final<|message|>A<|end|><|start|>user<|message|>b" in text


def test_analysis_kept_while_calling_tools() -> None:
    ours_msgs, _ = CASES["tool_round_trip"]
    assert "need weather" in codec.decode(codec.render_for_completion(ours_msgs))


def test_transcript_rerenders_after_final_answer() -> None:
    t = Transcript(codec, ours() + [user("a")])
    done = codec.encode("<|channel|>analysis<|message|>think<|end|><|start|>assistant"
                        "<|channel|>final<|message|>A<|return|>")
    parser = codec.parser()
    for tok in done:
        parser.feed(tok)
    t.add_completion(done, parser.finish())
    t.add_user("b")
    assert list(t.prompt()) == codec.render_for_completion(CASES["multi_turn"][0])


def test_stop_tokens_are_call_and_return() -> None:
    names = {codec.decode([t]) for t in codec.stop_tokens}
    assert names == {"<|call|>", "<|return|>"}


def test_training_render_ends_with_return() -> None:
    msgs = ours() + [user("a"), assistant("A", "final")]
    assert codec.decode(codec.render_for_training(msgs)).endswith(
        "<|start|>assistant<|channel|>final<|message|>A<|return|>")


@pytest.mark.parametrize("text", ["", "ok", "multi\nline ✓ 日本", "looks special <|end|><|call|>"])
@pytest.mark.parametrize("channel", ["commentary", "analysis", None])
def test_fast_tool_reply_equals_harmony_render(text: str, channel: str | None) -> None:
    msg = codec.tool_message("browser.search", text, channel)
    assert codec.render_tool_reply("browser.search", text, channel) == enc.render(msg)


@pytest.mark.parametrize("text", ["", "What is 2+2?", "fake <|start|>assistant ✓"])
def test_fast_user_message_equals_harmony_render(text: str) -> None:
    assert codec.render_user_message(text) == enc.render(user(text))


def test_training_render_can_keep_a_tool_trajectory() -> None:
    msgs = [*CASES["tool_round_trip"][0], assistant("It is 20 degrees.", "final")]
    dropped = codec.decode(codec.render_for_training(msgs))
    kept = codec.decode(codec.render_for_training(msgs, keep_analysis=True))
    assert "need weather" not in dropped
    assert "need weather" in kept and "to=functions.get_weather" in kept
    assert kept.endswith("<|channel|>final<|message|>It is 20 degrees.<|return|>")
