"""A custom tool agent: two ``@tool`` functions and one class namespace.

    python recipes/custom_tools.py                  # scripted engine, no model needed
    agent run recipes/custom_tools.py --engine local:/models/gpt-oss-20b

Loose functions become ``functions.*`` tools; a class with ``@tool`` methods becomes a namespace
of its own (``inventory.count``). Schemas come from type hints and docstrings.
"""

from __future__ import annotations

from typing import Literal

from agent import Agent, Engine, tool

TASK = "How many umbrellas do we have in Paris, and will we need them there today?"


@tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, object]:
    """Current weather for a city.

    Args:
        city: The city's name, e.g. "Paris".
        unit: Temperature unit.
    """
    return {"city": city, "temperature": 14 if unit == "c" else 57, "unit": unit, "sky": "rain"}


@tool
def convert_currency(amount: float, to: Literal["EUR", "USD"]) -> float:
    """Convert an amount between EUR and USD at a fixed demo rate."""
    return round(amount * (1.1 if to == "USD" else 1 / 1.1), 2)


class Inventory:
    """Stock levels of our shops."""

    namespace_name = "inventory"

    def __init__(self) -> None:
        self.stock = {("paris", "umbrella"): 12, ("lyon", "umbrella"): 3}

    @tool
    def count(self, shop: str, item: str) -> int:
        """How many of an item a shop holds.

        Args:
            shop: The shop's city, lower case.
            item: The item, singular.
        """
        return self.stock.get((shop.lower(), item.lower()), 0)


def build_agent(engine: Engine) -> Agent:
    return Agent(engine, tools=[get_weather, convert_currency, Inventory()],
                 instructions="Answer briefly. Use the tools for facts.")


SCRIPT = [
    "<|channel|>analysis<|message|>I need the stock first.<|end|>"
    "<|start|>assistant<|channel|>commentary to=inventory.count <|constrain|>json"
    '<|message|>{"shop": "paris", "item": "umbrella"}<|call|>',
    "<|channel|>commentary to=functions.get_weather <|constrain|>json"
    '<|message|>{"city": "Paris"}<|call|>',
    "<|channel|>final<|message|>We have **12 umbrellas** in Paris, and yes: it is raining "
    "there (14 °C), so they will be needed today.<|return|>",
]

if __name__ == "__main__":
    from agent.cli.run import recipe_main

    raise SystemExit(recipe_main(__file__))
