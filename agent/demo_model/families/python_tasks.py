"""``python`` tasks: arithmetic, statistics over given numbers, and a CSV in ``/mnt/data``.

The final answer quotes the tool's output, so it is only right when the real run computed it.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Mapping

from agent.demo_model.script import Reply, Task, call_code, final, gave_up, think

FAMILY = "python"
_REGIONS = ("North", "South", "East", "West", "Central")
_PRODUCTS = ("widgets", "gears", "valves", "lamps", "cables", "pumps")


def _answer_from(template: str, code: str, intro: str) -> Callable[[list[Reply]], str]:
    def respond(replies: list[Reply]) -> str:
        if not replies:
            return think(intro) + call_code(code)
        output = replies[-1].text.strip()
        if not output or "Traceback" in output or "\n" in output:
            return gave_up(f"unexpected python output {output!r}")
        return final(template.format(out=output))
    return respond


def _contains(answer: str) -> Callable[[str, Mapping[str, str]], bool]:
    return lambda text, files: answer in text


def arithmetic(rng: random.Random) -> Task:
    a, b, c = rng.randint(100, 99_999), rng.randint(12, 9_999), rng.randint(2, 999)
    kind = rng.choice(["mul_sub", "sum_mul", "pow_mod", "sum_squares", "primes"])
    if kind == "mul_sub":
        expr, value = f"{a} * {b} - {c}", a * b - c
        prompt, template = f"What is {a} × {b} − {c}?", f"{a} × {b} − {c} = {{out}}."
    elif kind == "sum_mul":
        expr, value = f"({a} + {b}) * {c}", (a + b) * c
        prompt, template = f"Compute ({a} + {b}) × {c}.", f"({a} + {b}) × {c} = {{out}}."
    elif kind == "pow_mod":
        e, m = rng.randint(5, 60), rng.randint(7, 997)
        expr, value = f"pow({b}, {e}, {m})", pow(b, e, m)
        prompt, template = f"What is {b}^{e} mod {m}?", f"{b}^{e} mod {m} = {{out}}."
    elif kind == "sum_squares":
        n = rng.randint(10, 500)
        expr, value = f"sum(k * k for k in range(1, {n + 1}))", n * (n + 1) * (2 * n + 1) // 6
        prompt = f"What is the sum of the squares of the integers from 1 to {n}?"
        template = f"The sum of k² for k = 1..{n} is {{out}}."
    else:
        n = rng.randint(50, 5_000)
        expr = f"sum(all(p % d for d in range(2, int(p ** 0.5) + 1)) for p in range(2, {n}))"
        value = sum(all(p % d for d in range(2, int(p**0.5) + 1)) for p in range(2, n))
        prompt, template = f"How many primes are there below {n}?", f"There are {{out}} primes below {n}."
    respond = _answer_from(template, f"print({expr})",
                           rng.choice(["Compute it exactly with python.",
                                       "Let me calculate this in python rather than by hand.",
                                       "I'll use python for the exact value."]))
    return Task(FAMILY, prompt, str(value), respond, _contains(str(value)))


def stats(rng: random.Random) -> Task:
    xs = [rng.randint(1, 500) for _ in range(rng.randint(6, 14))]
    measure = rng.choice(["mean", "median", "pstdev"])
    value = round(getattr(statistics, measure)(xs), 2)  # as the tool computes it
    words = {"mean": "mean", "median": "median", "pstdev": "population standard deviation"}[measure]
    prompt = f"Here are some measurements: {', '.join(map(str, xs))}. What is their {words}, " \
             "rounded to 2 decimals?"
    code = f"import statistics\nxs = {xs}\nprint(round(statistics.{measure}(xs), 2))"
    respond = _answer_from(f"The {words} is {{out}}.", code,
                           f"I'll compute the {words} with the statistics module.")
    return Task(FAMILY, prompt, str(value), respond, _contains(str(value)))


def csv_total(rng: random.Random) -> Task:
    rows = [(rng.choice(_REGIONS), rng.choice(_PRODUCTS), rng.randint(1, 400))
            for _ in range(rng.randint(8, 20))]
    name = rng.choice(["sales.csv", "orders.csv", "shipments.csv"])
    text = "region,product,units\n" + "".join(f"{r},{p},{u}\n" for r, p, u in rows)
    totals: dict[str, int] = {}
    for region, _, units in rows:
        totals[region] = totals.get(region, 0) + units
    best = max(sorted(totals), key=lambda r: totals[r])  # ties: alphabetical, as the code does
    answer = f"{best} {totals[best]}"
    code = (f"import csv\nfrom collections import Counter\ntotals = Counter()\n"
            f"with open('/mnt/data/{name}') as f:\n    for row in csv.DictReader(f):\n"
            "        totals[row['region']] += int(row['units'])\n"
            "best = max(sorted(totals), key=totals.get)\nprint(best, totals[best])")
    prompt = f"Which region has the most units in total in /mnt/data/{name}, and how many?"

    def respond(replies: list[Reply]) -> str:
        if not replies:
            return think("Read the CSV and sum the units per region.") + call_code(code)
        parts = replies[-1].text.split()
        if len(parts) != 2 or not parts[1].isdigit():
            return gave_up(f"unexpected python output {replies[-1].text!r}")
        return final(f"{parts[0]} has the most units: {parts[1]} in total.")

    def check(final_text: str, files: Mapping[str, str]) -> bool:
        return best in final_text and str(totals[best]) in final_text

    return Task(FAMILY, prompt, answer, respond, check, files={name: text})


def sample(rng: random.Random) -> Task:
    return rng.choice([arithmetic, arithmetic, stats, csv_total])(rng)
