"""The official ``openai`` client against the server: chat, streaming, function tool round trips."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest

from agent.engine.scripted import ScriptedEngine
from agent.harmony.codec import HarmonyCodec
from agent.serve import build_app, running

pytestmark = pytest.mark.anyio

CALL = ('<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant'
        '<|channel|>commentary to=functions.get_weather <|constrain|>json'
        '<|message|>{"city": "Paris"}<|call|>')
ANSWER = "<|channel|>final<|message|>It is 21°C in Paris.<|return|>"
WEATHER = {"name": "get_weather", "description": "Current weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def codec() -> HarmonyCodec:
    return HarmonyCodec()


async def _client(engine: ScriptedEngine) -> AsyncIterator[openai.AsyncOpenAI]:
    async with running(build_app(engine, model_name="gpt-oss-test")) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        async with client:
            yield client


def _prompt(engine: ScriptedEngine, codec: HarmonyCodec, i: int) -> str:
    return codec.decode(engine.requests[i].prompt_tokens)


async def test_chat_plain(codec: HarmonyCodec) -> None:
    engine = ScriptedEngine(["<|channel|>analysis<|message|>Say hi.<|end|><|start|>assistant"
                             "<|channel|>final<|message|>Hello there!<|return|>"], codec=codec)
    async for client in _client(engine):
        reply = await client.chat.completions.create(
            model="gpt-oss-test", temperature=0, max_tokens=64, reasoning_effort="low",
            messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hi"}])
    choice = reply.choices[0]
    assert choice.message.content == "Hello there!"
    assert choice.finish_reason == "stop"
    assert choice.message.model_extra["reasoning_content"] == "Say hi."
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    prompt = _prompt(engine, codec, 0)
    assert "Reasoning: low" in prompt
    assert "<|start|>developer<|message|># Instructions\n\nBe brief." in prompt
    assert prompt.endswith("<|start|>user<|message|>Hi<|end|><|start|>assistant")
    assert engine.requests[0].stop_tokens == codec.stop_tokens
    assert engine.requests[0].sampling.temperature == 0


async def test_chat_streaming(codec: HarmonyCodec) -> None:
    engine = ScriptedEngine([ANSWER], codec=codec)
    async for client in _client(engine):
        stream = await client.chat.completions.create(
            model="gpt-oss-test", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Weather?"}])
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "It is 21°C in Paris."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


async def test_chat_tool_round_trip(codec: HarmonyCodec) -> None:
    engine = ScriptedEngine([CALL, ANSWER], codec=codec)
    tools = [{"type": "function", "function": WEATHER}]
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    async for client in _client(engine):
        first = await client.chat.completions.create(model="gpt-oss-test", messages=messages,
                                                     tools=tools)
        call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'}]
        second = await client.chat.completions.create(model="gpt-oss-test", messages=messages,
                                                      tools=tools)
    assert second.choices[0].message.content == "It is 21°C in Paris."
    first_prompt, prompt = _prompt(engine, codec, 0), _prompt(engine, codec, 1)
    assert "namespace functions" in first_prompt and "type get_weather" in first_prompt
    assert ("<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json"
            '<|message|>{"city": "Paris"}<|call|>') in prompt
    assert ('<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>'
            '{"temp_c": 21}<|end|>') in prompt


async def test_chat_streaming_tool_call(codec: HarmonyCodec) -> None:
    engine = ScriptedEngine([CALL], codec=codec)
    async for client in _client(engine):
        stream = await client.chat.completions.create(
            model="gpt-oss-test", stream=True, tools=[{"type": "function", "function": WEATHER}],
            messages=[{"role": "user", "content": "Weather in Paris?"}])
        chunks = [c async for c in stream]
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather" and deltas[0].id.startswith("call_")
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_responses_tool_round_trip(codec: HarmonyCodec) -> None:
    engine = ScriptedEngine([CALL, ANSWER], codec=codec)
    tools = [{"type": "function", **WEATHER}]
    async for client in _client(engine):
        first = await client.responses.create(model="gpt-oss-test", input="Weather in Paris?",
                                              instructions="Use tools.", tools=tools)
        kinds = [item.type for item in first.output]
        assert kinds == ["reasoning", "function_call"]
        call = first.output[1]
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
        items = [{"role": "user", "content": "Weather in Paris?"},
                 *[i.model_dump(exclude_none=True) for i in first.output],
                 {"type": "function_call_output", "call_id": call.call_id, "output": "21C"}]
        second = await client.responses.create(model="gpt-oss-test", input=items, tools=tools)
    assert second.output_text == "It is 21°C in Paris."
    assert second.status == "completed" and second.usage.output_tokens > 0
    prompt = _prompt(engine, codec, 1)
    assert "<|start|>assistant<|channel|>analysis<|message|>Need the weather.<|end|>" in prompt
    assert "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>21C" in prompt


async def test_responses_streaming(codec: HarmonyCodec) -> None:
    engine = ScriptedEngine([ANSWER], codec=codec)
    async for client in _client(engine):
        stream = await client.responses.create(model="gpt-oss-test", input="Weather?",
                                               stream=True)
        events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "It is 21°C in Paris."
    assert events[-1].response.output_text == text


async def test_unknown_model_and_bad_body(codec: HarmonyCodec) -> None:
    async for client in _client(ScriptedEngine([ANSWER], codec=codec)):
        with pytest.raises(openai.NotFoundError, match="not served here"):
            await client.chat.completions.create(model="other", messages=[
                {"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError, match="messages"):
            await client.chat.completions.create(model="gpt-oss-test", messages=[])
