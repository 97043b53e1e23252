"""The browser end to end through a scripted agent run: what the model reads, policy denials and
budgets told to it, citations of the final answer, concurrent runs apart."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from agent import Agent, ScriptedEngine, StopReason
from agent.events import Outcome, RunResult
from agent.harmony.codec import HarmonyCodec
from policies.config import BrowserPolicy, Budgets, Policy
from toolkits.browser import BrowserConfig, BrowserToolkit, PlaywrightConfig, cite_run

pytestmark = pytest.mark.anyio


def browse(method: str, **args: object) -> str:
    """An assistant completion calling ``browser.<method>`` as gpt-oss writes it."""
    return (
        f"<|channel|>analysis to=browser.{method} <|constrain|>json"
        f"<|message|>{json.dumps(args)}<|call|>"
    )


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


def _agent(
    site: str, tmp_path: Path, script: list[str], *, deny: tuple[str, ...] = (),
    budgets: Budgets | None = None,
) -> Agent:
    config = BrowserConfig(
        search="playwright", open="http",  # search: the site's SearXNG-style JSON endpoint
        playwright=PlaywrightConfig(search_url=site + "/search?q={query}&format=json"),
    )
    browser = BrowserPolicy(allow_private=["127.0.0.1"], deny_domains=list(deny), page_timeout_s=5.0)
    return Agent(
        ScriptedEngine(script), [BrowserToolkit(config)],
        policy=Policy(browser=browser, budgets=budgets or Budgets()), files_root=tmp_path,
    )


def _tool_messages(result: RunResult) -> list[tuple[str, str]]:
    """(author, text) of every tool message in the transcript."""
    out = []
    for message in result.messages:
        if message.author.role.value == "tool":
            (content,) = message.content
            out.append((str(message.author.name), getattr(content, "text", "")))
    return out


async def test_search_open_find_then_cited_answer(site: str, tmp_path: Path) -> None:
    port = site.rsplit(":", 1)[1]
    script = [
        browse("search", query="apples"),
        browse("open", id=0),
        browse("find", pattern="avocados"),
        final("Page A covers avocados 【1†L4】, as find shows 【2†L0-L1】; search 【0†L4】."),
    ]
    expected = [
        ("browser.search",
         "[0] apples\n**viewing lines [0 - 5] of 5**\n\n"
         "L0: \nL1: URL: \nL2: # Search Results\nL3: \n"
         f"L4:   * 【0†Page A for apples†127.0.0.1:{port}】 About apples.\n"
         f"L5:   * 【1†Long page†127.0.0.1:{port}】 Many lines."),
        ("browser.open",
         f"[1] Page A ({site}/a)\n**viewing lines [0 - 6] of 6**\n\n"
         f"L0: \nL1: URL: {site}/a\nL2: ## About page A\nL3: \n"
         "L4: Page A talks about apples and avocados.\nL5: \nL6: Go 【0†home】."),
        ("browser.find",
         f"[2] Find results for text: `avocados` in `Page A` ({site}/a/find?pattern=avocados)\n"
         "**viewing lines [0 - 3] of 3**\n\n"
         "L0: # 【0†match at L4】\nL1: Page A talks about apples and avocados.\nL2: \nL3: Go home."),
    ]
    agent = _agent(site, tmp_path, script)
    async with agent:
        results: list[RunResult] = []

        async def run(i: int) -> None:
            results.append(await agent.run("Which fruit does page A cover?", run_id=f"run-{i}"))

        async with anyio.create_task_group() as tg:  # two runs at once: pages and cursors apart
            for i in range(2):
                tg.start_soon(run, i)

    for result in results:
        assert result.stop_reason is StopReason.FINAL
        assert [(r.call.recipient, r.output) for r in result.tool_calls] == expected
        assert [r.outcome for r in result.tool_calls] == [Outcome.OK] * 3
        assert [r.metadata["cursor"] for r in result.tool_calls] == [0, 1, 2]
        assert _tool_messages(result) == expected
        cited = cite_run(result.final_answer or "", result.tool_calls)
        link = f" ([127.0.0.1:{port}]({site}/a)) "
        assert cited.text == (
            f"Page A covers avocados {link}, as find shows {link}; search 【0†L4】."
        )
        assert [(c.cursor, c.url, c.quote) for c in cited.citations] == [
            (1, f"{site}/a", "Page A talks about apples and avocados."),
            (2, f"{site}/a", "# match at L4\nPage A talks about apples and avocados."),
        ]
    # The prompt of the engine's next turn holds each display verbatim, as a tool message on the
    # call's channel (what the model reads).
    engine = agent.engine
    assert isinstance(engine, ScriptedEngine)
    prompt = HarmonyCodec().decode(engine.requests[-1].prompt_tokens)
    for author, text in expected:
        assert f"<|start|>{author} to=assistant<|channel|>analysis<|message|>{text}<|end|>" in prompt


async def test_denied_domain_is_told_and_the_run_goes_on(site: str, tmp_path: Path) -> None:
    script = [
        browse("open", id="https://example.org/private"),
        browse("open", id=site + "/a"),
        final("Only page A was reachable."),
    ]
    agent = _agent(site, tmp_path, script, deny=("example.org",))
    result = await agent.run("Read example.org")
    denied, opened = result.tool_calls
    assert denied.outcome is Outcome.DENIED
    assert denied.output == (
        "Error fetching URL `https://example.org/private`: denied 'https://example.org/private': "
        "domain example.org matches deny_domains entry 'example.org'"
    )
    assert opened.outcome is Outcome.OK
    assert opened.output.startswith(f"[0] Page A ({site}/a)\n")  # the denial pushed no page
    assert _tool_messages(result)[0] == ("browser.open", denied.output)
    assert result.stop_reason is StopReason.FINAL


async def test_page_budget_running_out_is_told(site: str, tmp_path: Path) -> None:
    script = [
        browse("search", query="apples"),
        browse("open", id=0),
        browse("open", cursor=0, id=1),
        final("I could read one result only."),
    ]
    agent = _agent(site, tmp_path, script, budgets=Budgets(browser_pages=2))
    result = await agent.run("Read both results")
    search, first, second = result.tool_calls
    assert (search.outcome, first.outcome, second.outcome) == (Outcome.OK, Outcome.OK, Outcome.DENIED)
    assert second.output.startswith(
        "budget exhausted: browser pages opened (limit 2, 0 left); "
        "try another way or answer with what you have ("
    )
    assert _tool_messages(result)[-1] == ("browser.open", second.output)
    assert result.stop_reason is StopReason.FINAL
