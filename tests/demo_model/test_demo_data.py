"""The synthetic data generator: valid Harmony, right answers, exact masks, reproducible."""

from __future__ import annotations

import re

import pytest

from agent.demo_model.example import Example
from agent.demo_model.generate import FAMILIES, generate
from agent.harmony.codec import HarmonyCodec

pytestmark = pytest.mark.anyio
CODEC = HarmonyCodec()
N = 6  # per family


def _spans(mask: list[int]) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.fixture(scope="module")
async def examples() -> dict[str, list[Example]]:
    out = {}
    for family in FAMILIES:
        data, stats = await generate(N, 0, [family])
        assert stats.rejected == 0, family  # every final answer passed its task's check
        out[family] = data
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_masked_turns_parse_strictly(examples: dict[str, list[Example]], family: str) -> None:
    """Each masked span is one completion: our strict parser reads it, ending in a call or a
    return, and the last one is the final answer."""
    for ex in examples[family]:
        assert len(ex.mask) == len(ex.tokens)
        spans = _spans(ex.mask)
        assert len(spans) >= 2  # at least one tool call, then the answer
        for k, (a, b) in enumerate(spans):
            parser = CODEC.parser()
            for token in ex.tokens[a:b]:
                parser.feed(token)
            messages = parser.finish()
            last = messages[-1]
            if k < len(spans) - 1:
                assert last.end == "call" and last.is_tool_call
            else:
                assert (last.channel, last.end) == ("final", "return")
                assert b == len(ex.tokens)


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_mask_covers_exactly_the_assistant(examples: dict[str, list[Example]],
                                                 family: str) -> None:
    start, assistant = CODEC.specials.start, CODEC.encode("<|start|>assistant")
    for ex in examples[family]:
        starts = [i for i, t in enumerate(ex.tokens) if t == start]
        for i, nxt in zip(starts, [*starts[1:], len(ex.tokens)], strict=True):
            is_assistant = ex.tokens[i : i + len(assistant)] == assistant
            body = ex.mask[i + len(assistant) : nxt]
            assert all(body) if is_assistant else not any(ex.mask[i:nxt]), CODEC.decode(ex.tokens[i:nxt])
            # <|start|>assistant is the model's own only inside a completion
            follows_assistant = ex.mask[i - 1] == 1 if i else False
            assert all(ex.mask[i : i + len(assistant)]) == (is_assistant and follows_assistant)


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_answers_match_ground_truth(examples: dict[str, list[Example]], family: str) -> None:
    for ex in examples[family]:
        text = CODEC.decode(ex.tokens)
        final = text.rsplit("<|channel|>final<|message|>", 1)[1].removesuffix("<|return|>")
        for part in ex.answer.split():
            assert part.strip("`") in final or ex.answer in text, (ex.task, final)
        # the answer is the tool's: its reply in the transcript holds it
        replies = re.findall(r"to=assistant<\|channel\|>\w+<\|message\|>(.*?)<\|end\|>", text, re.S)
        assert replies


async def test_browser_citations_point_at_the_fact(examples: dict[str, list[Example]]) -> None:
    for ex in examples["browser"]:
        text = CODEC.decode(ex.tokens)
        final = text.rsplit("<|message|>", 1)[1]
        cursor, line = re.search(r"【(\d+)†L(\d+)】", final).groups()  # type: ignore[union-attr]
        page = re.search(rf"<\|message\|>\[{cursor}\] .*?<\|end\|>", text, re.S)
        assert page is not None
        cited = re.search(rf"^L{line}: (.*)$", page.group(0), re.M)
        assert cited is not None and ex.answer in cited.group(1)


async def test_same_seed_same_data(examples: dict[str, list[Example]]) -> None:
    again, _ = await generate(N, 0, ["functions"])
    assert again == examples["functions"]
    other, _ = await generate(N, 1, ["functions"])
    assert other != examples["functions"]
