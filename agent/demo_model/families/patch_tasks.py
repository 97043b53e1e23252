"""``apply_patch`` tasks: read a small file with python, fix one line with a patch, verify.

The patch's context lines are taken from the file as python printed it, so the hunk matches the
real file; the check compares the file the run left with the expected fix.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from agent.demo_model.script import Reply, Task, call_code, call_patch, final, gave_up, think

FAMILY = "apply_patch"
_NAMES = ("report", "billing", "inventory", "greeter", "shapes", "settings", "stats", "timer")


@dataclass(frozen=True)
class _Bug:
    request: str  # what the user asks
    lines: list[str]  # the file
    index: int  # the line to fix
    fixed: str  # its fixed text
    verify: str  # python that prints the fixed behaviour
    expected: str | None  # what it should print; None when it depends on inputs the user never
    # saw (the script's own test values), so only the fixed file can be checked


def _typo(rng: random.Random, module: str) -> _Bug:
    word, typo = rng.choice([("Hello", "Helo"), ("Welcome", "Wellcome"), ("Goodbye", "Goodby"),
                             ("Thanks", "Thnaks")])
    fn = rng.choice(["greet", "banner", "message", "salute"])
    lines = [f"def {fn}(name):", f'    return f"{typo}, {{name}}!"', ""]
    return _Bug(f"In {module}.py, {fn}() says \"{typo}\" instead of \"{word}\". Fix the typo.",
                lines, 1, f'    return f"{word}, {{name}}!"',
                f"from {module} import {fn}\nprint({fn}('Ana'))", f"{word}, Ana!")


def _operator(rng: random.Random, module: str) -> _Bug:
    fn, good, bad, what = rng.choice([("area", "*", "+", "the product of"),
                                      ("difference", "-", "+", "a minus b, not the sum of"),
                                      ("ratio", "/", "*", "a divided by b, not the product of")])
    a, b = rng.randint(2, 40), rng.randint(2, 9)
    lines = ['"""Small arithmetic helpers."""', "", "", f"def {fn}(a, b):",
             f"    return a {bad} b", ""]
    return _Bug(f"{fn}(a, b) in {module}.py should return {what} a and b. Please fix it.",
                lines, 4, f"    return a {good} b",
                f"from {module} import {fn}\nprint({fn}({a}, {b}))", None)


def _constant(rng: random.Random, module: str) -> _Bug:
    name = rng.choice(["MAX_RETRIES", "TIMEOUT_S", "PAGE_SIZE", "WORKERS"])
    old, new = rng.sample(range(1, 120), 2)
    lines = ["# service settings", f'NAME = "{module}"', f"{name} = {old}", "DEBUG = False", ""]
    return _Bug(f"Set {name} in {module}.py to {new} (it is {old} now).", lines, 2,
                f"{name} = {new}", f"import {module}\nprint({module}.{name})", str(new))


def _patch(path: str, lines: list[str], index: int, fixed: str) -> str:
    before = lines[max(0, index - 2) : index]
    after = [ln for ln in lines[index + 1 : index + 3] if ln != ""] or []
    body = [f" {ln}" for ln in before] + [f"-{lines[index]}", f"+{fixed}"] + [f" {ln}" for ln in after]
    return "*** Begin Patch\n*** Update File: " + path + "\n@@\n" + "\n".join(body) + "\n*** End Patch"


def sample(rng: random.Random) -> Task:
    module = rng.choice(_NAMES)
    bug = rng.choice([_typo, _operator, _constant])(rng, module)
    path = f"{module}.py"
    original = "\n".join(bug.lines)
    expected = "\n".join(bug.lines[: bug.index] + [bug.fixed] + bug.lines[bug.index + 1 :])
    verify = f"import sys\nsys.path.insert(0, '/mnt/data')\n{bug.verify}"

    def respond(replies: list[Reply]) -> str:
        if not replies:
            return think(f"First look at {path}.") + call_code(
                f"print(open('/mnt/data/{path}').read())")
        last = replies[-1]
        if len(replies) == 1:
            seen = last.text.rstrip("\n").split("\n")
            broken = bug.lines[bug.index]
            if broken not in seen:
                return gave_up(f"the line to fix is not in {path}")
            i = seen.index(broken)
            return think(f"Line {i + 1} is wrong: `{broken.strip()}`.") + call_patch(
                _patch(path, seen, i, bug.fixed))
        if len(replies) == 2:
            if not last.text.startswith("Success"):
                return gave_up(f"the patch failed: {last.text[:120]}")
            return call_code(verify)
        return final(f"Fixed {path}: `{bug.lines[bug.index].strip()}` is now "
                     f"`{bug.fixed.strip()}`. Check: it prints {last.text.strip()}.")

    def check(text: str, files: Mapping[str, str]) -> bool:
        shown = f"prints {bug.expected}." if bug.expected is not None else "prints "
        return files.get(path) == expected and shown in text

    return Task(FAMILY, bug.request, bug.fixed.strip(), respond, check, files={path: original})
