"""Rich rendering of a run's events, shared by ``agent run``, ``agent chat`` and ``agent batch``.

    display = RunDisplay(Console(), verbose=0)
    async for event in agent.stream(task):
        display(event)

What shows: the model's analysis streams dimmed; each tool call is one line (its arguments and
result summarised; ``-v`` prints them whole); the final answer is printed once, as Markdown,
with browser citations (``【3†L9-L11】``) turned into clickable links; a usage line ends the run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import assert_never

from rich.console import Console
from rich.markdown import Markdown
from rich.text import Text

from agent.events import (
    Event,
    FormatError,
    MessageDone,
    Outcome,
    PolicyChecked,
    RunFinished,
    RunResult,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
    TurnFinished,
)

CITATION = re.compile(r"【(?P<cursor>\d+)†(?P<content>[^†】]+)(?:†[^†】]+)?】")
_OUTCOME_STYLE = {Outcome.OK: "green", Outcome.ERROR: "red", Outcome.DENIED: "red",
                  Outcome.TIMEOUT: "yellow", Outcome.UNKNOWN: "red"}


def one_line(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def cite(text: str, records: Sequence[ToolCallRecord]) -> tuple[str, list[str]]:
    """Markdown with each ``【cursor†...】`` linked to the page the browser showed at that cursor,
    and the list of sources cited (``[n] title - url``)."""
    pages = {r.metadata["cursor"]: r.metadata for r in records
             if "cursor" in r.metadata and r.metadata.get("url")}
    sources: dict[str, int] = {}

    def link(match: re.Match[str]) -> str:
        page = pages.get(int(match.group("cursor")))
        if page is None:
            return match.group(0)
        url = str(page["url"])
        n = sources.setdefault(url, len(sources) + 1)
        return f" [[{n}]]({url})"

    linked = CITATION.sub(link, text)
    titles = {str(p["url"]): str(p.get("title") or p["url"]) for p in pages.values()}
    return linked, [f"[{n}] {titles[url]} - {url}" for url, n in sources.items()]


def usage_line(result: RunResult) -> str:
    tool_time = sum(r.duration_s for r in result.tool_calls)
    prompt, reused = result.prompt_tokens, result.reused_tokens
    share = f", {reused / prompt:.0%}" if prompt else ""
    return (f"{result.stop_reason.value} · {len(result.usage)} turns · {prompt:,} prompt tokens "
            f"({reused:,} reused{share}) · {result.completion_tokens:,} completion tokens · "
            f"{len(result.tool_calls)} tool calls ({tool_time:.2f} s) · {result.duration_s:.2f} s")


class RunDisplay:
    """Renders events as they come. ``verbose``: 0 summaries, 1 whole tool I/O, 2 everything."""

    def __init__(self, console: Console, out: Console | None = None, *, verbose: int = 0,
                 show_analysis: bool = True, show_usage: bool = True) -> None:
        self.console = console  # the live stream: analysis, tool calls, usage
        self.out = out or console  # the answer (stdout, so `agent run ... > answer.md` works)
        self.verbose = verbose
        self.show_analysis = show_analysis
        self.show_usage = show_usage
        self._streaming: str | None = None  # channel being streamed, to end its line

    def _end_stream(self) -> None:
        if self._streaming is not None:
            self.console.out("")
            self._streaming = None

    def _delta(self, event: TextDelta) -> None:
        if event.recipient is not None or event.channel == "final" or not self.show_analysis:
            return  # tool arguments show with the call; the final answer shows once, linked
        if self._streaming != event.channel:
            self._end_stream()
            self._streaming = event.channel
        self.console.out(event.text, style="dim", end="", highlight=False)

    def _tool_started(self, event: ToolStarted) -> None:
        self._end_stream()
        call = event.call
        args = call.arguments if self.verbose else one_line(call.arguments)
        line = Text("→ ", style="cyan")
        line.append(call.recipient, style="bold cyan")
        line.append(f" {args}", style="cyan")
        self.console.print(line, soft_wrap=True)

    def _tool_finished(self, record: ToolCallRecord) -> None:
        style = _OUTCOME_STYLE[record.outcome]
        line = Text("  ← ", style=style)
        line.append(f"{record.outcome.value} {record.duration_s:.2f}s "
                    f"{len(record.output):,} chars", style=style)
        if self.verbose:
            self.console.print(line)
            limit = None if self.verbose > 1 else 4000
            text = record.output if limit is None else record.output[:limit]
            self.console.print(Text(text, style="dim"), soft_wrap=True)
        else:
            line.append(f"  {one_line(record.output, 80)}", style="dim")
            self.console.print(line, soft_wrap=True)

    def final(self, result: RunResult) -> None:
        """The answer, with citations linked, and the sources it cites."""
        self._end_stream()
        if result.final_answer is None:
            self.console.print(f"[yellow]no final answer[/] ({result.stop_reason.value})")
            return
        text, sources = cite(result.final_answer, result.tool_calls)
        if self.out.is_terminal:
            self.out.print(Markdown(text, hyperlinks=True))
        else:  # a file or a pipe gets the Markdown itself
            self.out.out(text, highlight=False)
        for source in sources:
            self.out.print(Text(source, style="dim"), soft_wrap=True)
        for path in result.files:
            self.console.print(Text(f"file: {path}", style="dim"), soft_wrap=True)

    def __call__(self, event: Event) -> None:
        match event:
            case TextDelta():
                self._delta(event)
            case MessageDone():
                pass
            case FormatError(reason=reason):
                self._end_stream()
                self.console.print(Text(f"! malformed completion: {reason}", style="yellow"))
            case PolicyChecked(call=call, decision=decision):
                if not decision.allowed or self.verbose > 1:
                    self._end_stream()
                    self.console.print(Text(f"  policy {decision.action.value} {call.recipient}"
                                            f" ({decision.rule}: {decision.reason})",
                                            style="red" if not decision.allowed else "dim"))
            case ToolStarted():
                self._tool_started(event)
            case ToolFinished(record=record):
                self._tool_finished(record)
            case TurnFinished(usage=u):
                if self.verbose > 1:
                    self._end_stream()
                    self.console.print(Text(
                        f"  turn {u.turn}: {u.prompt_tokens:,} prompt ({u.reused_tokens:,} "
                        f"reused) + {u.completion_tokens:,} completion tokens", style="dim"))
            case RunFinished(result=result):
                self.final(result)
                if self.show_usage:
                    self.console.print(Text(usage_line(result), style="dim"), soft_wrap=True)
            case _:
                assert_never(event)
