"""Streaming parse: token by token, strict, with typed errors that keep the valid part."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.errors import HarmonyParseError
from agent.harmony import HarmonyCodec, ParsedMessage

codec = HarmonyCodec()


def parse(text: str, *, truncated: bool = False) -> tuple[list[ParsedMessage], list[str]]:
    parser = codec.parser()
    deltas: list[str] = []
    for token in codec.encode(text):
        deltas.extend(d.text for d in parser.feed(token))
    return parser.finish(truncated=truncated), deltas


def fails(text: str, *, truncated: bool = False) -> HarmonyParseError:
    with pytest.raises(HarmonyParseError) as info:
        parse(text, truncated=truncated)
    return info.value


@pytest.mark.parametrize(
    ("text", "recipient", "channel", "ctype", "body"),
    [
        ('<|channel|>analysis to=browser.search <|constrain|>json<|message|>{"query": "gpt-oss"}'
         "<|call|>", "browser.search", "analysis", "<|constrain|>json", '{"query": "gpt-oss"}'),
        ("<|channel|>analysis to=python code<|message|>print(2 + 2)<|call|>", "python",
         "analysis", "code", "print(2 + 2)"),
        ('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>'
         '{"location": "Tokyo"}<|call|>', "functions.get_weather", "commentary",
         "<|constrain|>json", '{"location": "Tokyo"}'),
        # the recipient before the channel gives the same message
        (' to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>'
         '{"location": "Tokyo"}<|call|>', "functions.get_weather", "commentary",
         "<|constrain|>json", '{"location": "Tokyo"}'),
    ],
)
def test_tool_calls(text: str, recipient: str, channel: str, ctype: str, body: str) -> None:
    messages, deltas = parse(text)
    assert len(messages) == 1
    m = messages[0]
    assert (m.recipient, m.channel, m.content_type, m.text, m.end) == (
        recipient, channel, ctype, body, "call")
    assert m.is_tool_call
    assert "".join(deltas) == body


def test_analysis_then_call_then_nothing_more() -> None:
    text = ("<|channel|>analysis<|message|>Let me look.<|end|>"
            "<|start|>assistant to=functions.f<|channel|>commentary <|constrain|>json"
            "<|message|>{}<|call|>")
    messages, _ = parse(text)
    assert [(m.channel, m.recipient, m.end) for m in messages] == [
        ("analysis", None, "end"), ("commentary", "functions.f", "call")]


def test_final_answer() -> None:
    messages, deltas = parse("<|channel|>final<|message|>Voilà — 42 🎉<|return|>")
    assert messages[0].text == "Voilà — 42 🎉"
    assert "".join(deltas) == "Voilà — 42 🎉"  # split UTF-8 sequences are joined before emitting


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("<|channel|>analysis think<|end|>", "missing <|message|>"),
        ("<|channel|>thoughts<|message|>x<|end|>", "unknown channel 'thoughts'"),
        ("<|message|>x<|end|>", "header is empty"),
        ("garbled words<|message|>x<|end|>", "has no <|channel|>"),
        ("<|channel|>final<|message|>x<|channel|>y<|return|>", "stray special token <|channel|>"),
        ("<|channel|>final<|message|>a<|start|>b<|return|>", "stray special token <|start|>"),
        ("<|channel|>commentary to=a to=b<|message|>{}<|call|>", "recipients"),
        ("<|channel|>final<|message|>ok<|end|><|start|>user<|message|>x<|end|>",
         "must start with <|start|>assistant"),
        ("<|channel|>final<|message|>no recipient<|call|>", "no recipient"),
        ("<|channel|>analysis<|message|>x<|return|>", "only final messages return"),
        ("<|channel|>final<|message|>x<|end|>stray", "expected <|start|>"),
    ],
)
def test_malformed_is_one_typed_error(text: str, needle: str) -> None:
    err = fails(text)
    assert needle in err.reason
    assert err.raw_text and text.startswith(err.raw_text)  # up to the faulty token


def test_truncated_at_max_tokens() -> None:
    err = fails("<|channel|>final<|message|>The answer is", truncated=True)
    assert "cut at the token limit" in err.reason
    assert err.raw_text.endswith("The answer is")


def test_text_after_call_keeps_the_call() -> None:
    err = fails('<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}<|call|>oops')
    assert "text after <|call|>" in err.reason
    assert [m.recipient for m in err.messages] == ["functions.f"]  # type: ignore[attr-defined]


def test_error_keeps_valid_messages_and_knows_the_broken_recipient() -> None:
    err = fails("<|channel|>analysis<|message|>plan<|end|><|start|>assistant<|channel|>"
                "commentary to=functions.f <|constrain|>json<|message|>{<|start|>")
    assert [m.text for m in err.messages] == ["plan"]  # type: ignore[attr-defined]
    assert (err.recipient, err.channel) == ("functions.f", "commentary")


def test_offline_load_from_the_shipped_file(tmp_path: Path) -> None:
    """With no network and an empty cache, the encoding loads from the package data."""
    script = textwrap.dedent("""
        import socket
        def no_network(*a, **k):
            raise OSError("network is unreachable in this test")
        socket.socket.connect = no_network
        socket.create_connection = no_network
        socket.getaddrinfo = no_network
        from agent.harmony.vocab import load_encoding
        enc = load_encoding()
        print(len(enc.encode("hello world")))
    """)
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_ENCODINGS_BASE"}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"),
               TIKTOKEN_RS_CACHE_DIR=str(tmp_path / "rs"), HTTPS_PROXY="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


def test_corrupt_vocabulary_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "o200k_base.tiktoken").write_text("not a vocabulary")
    script = "from agent.harmony.vocab import load_encoding; load_encoding()"
    env = {**os.environ, "TIKTOKEN_ENCODINGS_BASE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert "is corrupt" in out.stderr and "reinstall oss-agent" in out.stderr


def test_missing_vocabulary_says_what_to_do(tmp_path: Path) -> None:
    script = "from agent.harmony.vocab import load_encoding; load_encoding()"
    env = {**os.environ, "TIKTOKEN_ENCODINGS_BASE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert "is missing" in out.stderr and "TIKTOKEN_ENCODINGS_BASE" in out.stderr
