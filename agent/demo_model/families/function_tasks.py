"""Custom function tools: a few invented business tools declared in the developer message.

Each example draws its own data (so answers come only from the tool) and offers two to four
tools, of which the task needs one; the final answer quotes the JSON the real tool returned.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from typing import Any, Literal

from agent.demo_model.script import Reply, Task, call_json, final, gave_up, think
from toolkits.functions import tool

FAMILY = "functions"
_CITIES = ("Oslo", "Lima", "Perth", "Quito", "Riga", "Turin", "Kyoto", "Dakar", "Porto")
_CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF", "SEK")
_STATUSES = ("processing", "shipped", "delivered", "on hold")
_SKY = ("clear", "cloudy", "rain", "snow", "fog")


def _tools(rng: random.Random) -> dict[str, tuple[Callable[..., Any], Callable[[], tuple[str, dict[str, Any], Callable[[dict[str, Any]], str], str]]]]:  # noqa: E501
    """name -> (tool function, question maker); the data is drawn here, per example."""
    weather = {c: (rng.randint(-15, 38), rng.choice(_SKY)) for c in _CITIES}
    rates = {(a, b): round(rng.uniform(0.05, 160), 4) for a in _CURRENCIES for b in _CURRENCIES}
    orders = {f"A{rng.randint(1000, 9999)}": (rng.choice(_STATUSES), round(rng.uniform(5, 900), 2))
              for _ in range(5)}
    stock = {(s, w): rng.randint(0, 500) for s in ("SKU-1", "SKU-2", "SKU-3") for w in ("east", "west")}

    @tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, object]:
        """Current weather for a city.

        Args:
            city: The city's name, e.g. "Oslo".
            unit: Temperature unit, c or f.
        """
        t, sky = weather.get(city, (0, "unknown"))
        return {"city": city, "temperature": t if unit == "c" else round(t * 9 / 5 + 32), "unit": unit, "sky": sky}

    @tool
    def get_exchange_rate(base: str, quote: str) -> dict[str, object]:
        """Today's exchange rate: how many units of quote one unit of base buys.

        Args:
            base: ISO code of the currency sold, e.g. "EUR".
            quote: ISO code of the currency bought.
        """
        return {"base": base, "quote": quote, "rate": rates.get((base, quote), 1.0)}

    @tool
    def lookup_order(order_id: str) -> dict[str, object]:
        """Status and total of a customer order.

        Args:
            order_id: The order id, like "A1234".
        """
        if order_id not in orders:
            return {"error": f"no order {order_id}"}
        status, total = orders[order_id]
        return {"order_id": order_id, "status": status, "total": total}

    @tool
    def get_stock(sku: str, warehouse: Literal["east", "west"]) -> dict[str, object]:
        """Units of an item in stock at a warehouse.

        Args:
            sku: The item's SKU, like "SKU-1".
            warehouse: east or west.
        """
        return {"sku": sku, "warehouse": warehouse, "units": stock.get((sku, warehouse), 0)}

    def ask_weather() -> tuple[str, dict[str, Any], Callable[[dict[str, Any]], str], str]:
        city, unit = rng.choice(_CITIES), rng.choice(["c", "f"])
        t, sky = weather[city]
        shown = t if unit == "c" else round(t * 9 / 5 + 32)
        deg = "°C" if unit == "c" else "°F"
        return (f"What's the weather in {city} right now, in {'Celsius' if unit == 'c' else 'Fahrenheit'}?",
                {"city": city, "unit": unit},
                lambda r: f"It is {r['temperature']}{deg} in {city}, sky: {r['sky']}.", f"{shown}{deg}")

    def ask_rate() -> tuple[str, dict[str, Any], Callable[[dict[str, Any]], str], str]:
        a, b = rng.sample(_CURRENCIES, 2)
        return (f"How many {b} does one {a} buy today?", {"base": a, "quote": b},
                lambda r: f"One {a} buys {r['rate']} {b} today.", str(rates[(a, b)]))

    def ask_order() -> tuple[str, dict[str, Any], Callable[[dict[str, Any]], str], str]:
        oid = rng.choice(sorted(orders))
        return (f"Where is my order {oid}, and what was its total?", {"order_id": oid},
                lambda r: f"Order {oid} is {r['status']}; its total was {r['total']}.",
                f"{orders[oid][0]} {orders[oid][1]}")

    def ask_stock() -> tuple[str, dict[str, Any], Callable[[dict[str, Any]], str], str]:
        sku, wh = rng.choice(sorted(stock))
        return (f"How many {sku} do we have in the {wh} warehouse?", {"sku": sku, "warehouse": wh},
                lambda r: f"The {wh} warehouse holds {r['units']} units of {sku}.", str(stock[(sku, wh)]))

    return {"get_weather": (get_weather, ask_weather), "get_exchange_rate": (get_exchange_rate, ask_rate),
            "lookup_order": (lookup_order, ask_order), "get_stock": (get_stock, ask_stock)}


def sample(rng: random.Random) -> Task:
    catalog = _tools(rng)
    names = rng.sample(sorted(catalog), rng.randint(2, 4))
    target = rng.choice(names)
    prompt, args, answer_from, truth = catalog[target][1]()
    instructions = rng.choice(["You are a helpful assistant for Acme Corp. Use the tools for facts.",
                               "Answer in one sentence. Always call a tool before answering.",
                               "You help our support team. Never guess: look things up."])

    def respond(replies: list[Reply]) -> str:
        if not replies:
            return think(f"{target} answers this.") + call_json(f"functions.{target}", args)
        try:
            reply = json.loads(replies[-1].text)
        except ValueError:
            return gave_up(f"the tool replied {replies[-1].text[:80]!r}")
        if not isinstance(reply, dict) or "error" in reply:
            return gave_up(f"the tool replied {replies[-1].text[:80]!r}")
        return final(answer_from(reply))

    def check(text: str, files: Mapping[str, str]) -> bool:
        return all(part in text for part in truth.split())

    return Task(FAMILY, prompt, truth, respond, check, instructions=instructions,
                tools=[catalog[n][0] for n in names])
