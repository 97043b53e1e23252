"""``browser`` tasks: facts about invented towns on a generated almanac site, cited.

Every example gets a web of its own: a handful of towns with sampled facts, their pages
(converted by the real HTML converter) and the search answer, served by the browser's
``recorded`` backend. Nothing can be memorised across examples, and no network is used. The
script searches, opens the right result by the id the real reply gave it, sometimes uses
``find``, and cites the line it read as ``【cursor†Lline】``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from agent.demo_model.script import Reply, Task, call_json, final, gave_up, think
from toolkits.browser.backends.base import results_page
from toolkits.browser.convert import html_to_page

FAMILY = "browser"
SITE = "https://almanac.example"
_SYLLABLES = ("bar", "ven", "quil", "lon", "mar", "esk", "tor", "ith", "del", "ran", "cor",
              "sul", "ny", "wick", "ford", "bel", "mont", "ash", "ka", "ro", "ser", "tha")
_RIVERS = ("Ambrel", "Sorrow", "Tiel", "Vesk", "Lune", "Orrin", "Calder", "Mirren")
_FIRST = ("Ada", "Bram", "Celia", "Doran", "Edda", "Fenn", "Greta", "Hollis", "Ines", "Jory")
_LAST = ("Vale", "Marsh", "Quist", "Holloway", "Penn", "Roake", "Stroud", "Teller")
# attribute -> (label on the page, question wording)
_FACTS = {
    "population": ("Population", "the population of {town}"),
    "founded": ("Founded", "the year {town} was founded"),
    "mayor": ("Mayor", "the name of the mayor of {town}"),
    "river": ("River", "the river that runs through {town}"),
    "elevation": ("Elevation", "the elevation of {town}"),
}
_MARKER = re.compile(r"【(\d+)†([^†】]+)")
_CURSOR = re.compile(r"^\[(\d+)\]")
_LINE = re.compile(r"^L(\d+): (.*)$", re.M)
_MATCH_AT = re.compile(r"match at L(\d+)")


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _facts(rng: random.Random) -> dict[str, str]:
    return {
        "population": f"{rng.randint(800, 950_000):,}",
        "founded": str(rng.randint(1100, 1950)),
        "mayor": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "river": rng.choice(_RIVERS),
        "elevation": f"{rng.randint(2, 2400)} m",
    }


def _page_html(town: str, province: str, facts: Mapping[str, str]) -> str:
    items = "".join(f"<li>{_FACTS[k][0]}: {v}</li>" for k, v in facts.items())
    return (f"<html><head><title>{town} - Almanac</title></head><body><h1>{town}</h1>"
            f"<p>{town} is a town in the province of {province}, on the {facts['river']} river."
            f"</p><h2>Facts</h2><ul>{items}</ul><p>See also the "
            f"<a href='{SITE}/provinces/{province.lower()}'>{province}</a> page.</p></body></html>")


def _url(town: str) -> str:
    return f"{SITE}/towns/{town.lower()}"


def _recording(query: str, towns: dict[str, dict[str, str]], order: list[str],
               province: str) -> list[dict[str, Any]]:
    results = [(f"{t} - Almanac", _url(t), f"{t}, a town in {province}. Population, "
                f"history, government.") for t in order]
    entries = [{"op": "search", "key": query, "page": results_page(query, results).to_json()}]
    for town, facts in towns.items():
        page = html_to_page(_page_html(town, province, facts), _url(town))
        entries.append({"op": "fetch", "key": _url(town), "page": page.to_json()})
    return entries


def _cited_line(text: str, label: str) -> tuple[int, str] | None:
    for match in _LINE.finditer(text):
        if match[2].strip().startswith(f"* {label}:") or match[2].strip().startswith(f"{label}:"):
            return int(match[1]), match[2].split(":", 1)[1].strip()
    return None


def _names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        if (n := _name(rng)) not in names:
            names.append(n)
    return names


def sample(rng: random.Random) -> Task:
    province = _name(rng)
    names = _names(rng, rng.randint(3, 5))
    towns = {n: _facts(rng) for n in names}
    town, attr = rng.choice(names), rng.choice(list(_FACTS))
    label, wording = _FACTS[attr]
    query = f"{town} {label.lower()}" if rng.random() < 0.5 else f"{town} almanac"
    order = rng.sample(names, len(names))
    use_find = rng.random() < 0.4
    prompt = rng.choice(["Look up {q} on the almanac site and cite your source.",
                         "Using the browser, what is {q}? Cite the page.",
                         "Find {q}. Give a citation."]).format(q=wording.format(town=town))
    state: dict[str, int] = {}

    def respond(replies: list[Reply]) -> str:
        if not replies:
            return think(f"Search the almanac for {town}.") + call_json(
                "browser.search", {"query": query}, channel="analysis")
        last = replies[-1]
        if last.author == "browser.search":
            ids = [int(i) for i, title in _MARKER.findall(last.text) if title.startswith(town)]
            if not ids:
                return gave_up("no search result for the town")
            return think(f"Result {ids[0]} is the {town} page; open it.") + call_json(
                "browser.open", {"id": ids[0]}, channel="analysis")
        cursor = _CURSOR.match(last.text)
        if cursor is None:
            return gave_up(f"unexpected browser reply {last.text[:80]!r}")
        if last.author == "browser.open":
            state["page"] = int(cursor[1])
            if use_find:
                return call_json("browser.find", {"pattern": f"{label}:"}, channel="analysis")
            found = _cited_line(last.text, label)
        else:  # browser.find: the match names the page line to cite
            at, found = _MATCH_AT.search(last.text), _cited_line(last.text, label)
            if at is None or found is None:
                return gave_up("find did not match")
            found = (int(at[1]), found[1])
        if found is None:
            return gave_up(f"no {label} line on the page")
        line, value = found
        subject = wording.format(town=town)
        return final(f"{subject[0].upper()}{subject[1:]} is {value}"
                     f"【{state['page']}†L{line}】.")

    def check(text: str, files: Mapping[str, str]) -> bool:
        return towns[town][attr] in text and "【" in text

    return Task(FAMILY, prompt, towns[town][attr], respond, check,
                recording=_recording(query, towns, order, province))
