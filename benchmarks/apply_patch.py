"""apply_patch speed: a 1,000-hunk patch on 10k- and 100k-line files, exact and fuzzy.

Each hunk changes one line between two context lines, hunks in file order. "end to end" is
``apply_patch(text, workspace)``: size check, parse, path jail and globs, read, match, atomic
write (temporary file + rename); "in memory" is parse + match + splice on a string, the part the
reference's 41 ms (100k lines) / 9 ms (10k lines) measures. The fuzzy case indents every file
line and adds trailing spaces, so every hunk matches only at the last level (ignoring
surrounding whitespace). The repeated case makes the context lines occur 100 times each, so the
matcher must tell copies apart (and finds each hunk's unique changed line).

The reference itself (gpt-oss's ``gpt_oss/tools/apply_patch.py``, not a dependency) is timed side
by side when ``APPLY_PATCH_REFERENCE`` names that file, e.g. taken from the gpt-oss wheel
(``pip download gpt-oss --no-deps --python-version 3.12 --only-binary=:all:``). Run:

    APPLY_PATCH_REFERENCE=path/to/apply_patch.py .venv/bin/python benchmarks/apply_patch.py
"""

from __future__ import annotations

import gc
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from toolkits.apply_patch import apply_patch, parse_patch, update_text
from toolkits.apply_patch.model import UpdateFile

HUNKS = 1_000
REPEATS = int(os.environ.get("APPLY_PATCH_REPEATS", "7"))
REFERENCE_MS = {10_000: 9.0, 100_000: 41.0}  # the reference, in memory, on our machine (issue 7)


def make_case(n: int, *, fuzzy: bool = False, repeated: bool = False) -> tuple[str, str]:
    """(file text, patch text) for an n-line file and HUNKS one-line hunks."""

    def line(i: int) -> str:
        j = i % 100 if repeated else i  # repeated: every line occurs n/100 times
        body = f"row {j}: value = {(j * 7919) % 100_003}"
        return f"    {body}  " if fuzzy else body

    lines = [line(i) for i in range(n)]
    if repeated:  # the changed line is unique, its context lines occur n/100 times
        for k in range(HUNKS):
            c = (2 * k + 1) * n // (2 * HUNKS)
            lines[c] = f"unique {c}"
    body = ["*** Begin Patch", "*** Update File: big.txt"]
    for k in range(HUNKS):
        c = (2 * k + 1) * n // (2 * HUNKS)
        before, old, after = (lines[c - 1], lines[c], lines[c + 1])
        if fuzzy:
            before, old, after = before.strip(), old.strip(), after.strip()
        body += ["@@", " " + before, "-" + old, f"+changed {c}", " " + after]
    body.append("*** End Patch")
    return "\n".join(lines) + "\n", "\n".join(body) + "\n"


def timed(
    fn: Callable[[], object], setup: Callable[[], object] = lambda: None, repeats: int = 0
) -> float:
    """Median milliseconds of REPEATS runs of ``fn``; ``setup`` runs untimed before each."""
    samples = []
    for _ in range(repeats or REPEATS):
        setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def load_reference() -> ModuleType | None:
    path = os.environ.get("APPLY_PATCH_REFERENCE")
    if not path:
        return None
    spec = importlib.util.spec_from_file_location("reference_apply_patch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def measure_reference(ref: ModuleType, n: int, **kind: bool) -> float:
    """The reference applying the same patch in memory (text_to_patch + patch_to_commit)."""
    text, patch = make_case(n, **kind)
    orig = {"big.txt": text}

    def run() -> None:
        parsed, _ = ref.text_to_patch(patch, orig)
        commit = ref.patch_to_commit(parsed, orig)
        assert commit.changes["big.txt"].new_content.count("changed ") == HUNKS

    return timed(run, repeats=1 if kind.get("fuzzy") else 0)  # fuzzy: seconds per run


def measure(n: int, root: Path, **kind: bool) -> tuple[float, float]:
    text, patch = make_case(n, **kind)
    target = root / "big.txt"
    data = text.encode()
    expected_changes = HUNKS

    def in_memory() -> None:
        (op,) = parse_patch(patch).ops
        assert isinstance(op, UpdateFile)
        new, _ = update_text(text, op.hunks, "big.txt")
        assert new.count("changed ") == expected_changes

    def end_to_end() -> None:
        result = apply_patch(patch, root)
        assert result.updated == ["big.txt"]

    mem = timed(in_memory)
    e2e = timed(end_to_end, setup=lambda: target.write_bytes(data))
    assert target.read_text().count("changed ") == expected_changes
    return mem, e2e


def main() -> None:
    print(f"machine: {platform.machine()} {platform.processor() or ''} "
          f"python {platform.python_version()} ({platform.system()})")
    print(f"{HUNKS} hunks, median of {REPEATS} runs, milliseconds")
    ref = load_reference()
    print(f"{'case':<32}{'in memory':>10}{'end to end':>12}{'reference':>11}"
          + ("  (reference: stated numbers)" if ref is None else "  (reference: timed here)"))
    results: dict[tuple[str, int], tuple[float, float]] = {}
    ref_ms: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for label, kind in (("exact", {}), ("fuzzy", {"fuzzy": True}),
                            ("repeated context", {"repeated": True})):
            for n in (10_000, 100_000):
                mem, e2e = measure(n, root, **kind)
                results[(label, n)] = (mem, e2e)
                shown = f"{REFERENCE_MS[n]:.0f}" if label == "exact" else "-"
                # the reference is quadratic on fuzzy hunks: 100k lines would take minutes
                if ref is not None and not (label == "fuzzy" and n > 10_000):
                    ref_ms[(label, n)] = measure_reference(ref, n, **kind)
                    shown = f"{ref_ms[(label, n)]:.1f}"
                print(f"{label + f' {n:,} lines':<32}{mem:>10.1f}{e2e:>12.1f}{shown:>11}")
    print()
    for label in ("exact", "fuzzy", "repeated context"):
        mem10, e2e10 = results[(label, 10_000)]
        mem100, e2e100 = results[(label, 100_000)]
        print(f"{label}: 100k/10k time ratio {e2e100 / e2e10:.1f}x end to end, "
              f"{mem100 / mem10:.1f}x in memory (file 10x larger; linear means <= 10x)")
    exact100 = results[("exact", 100_000)]
    ref100 = ref_ms.get(("exact", 100_000), REFERENCE_MS[100_000])
    print(f"exact 100k: {exact100[1]:.1f} ms end to end vs goal 50 ms; in memory "
          f"{exact100[0]:.1f} ms vs reference {ref100:.1f} ms ({ref100 / exact100[0]:.2f}x)")
    for (label, n), ms in ref_ms.items():
        if label != "exact":
            ours = results[(label, n)][0]
            print(f"{label} {n:,}: reference {ms:.1f} ms in memory vs ours {ours:.1f} ms "
                  f"({ms / ours:.1f}x)")
    fuzzy100 = results[("fuzzy", 100_000)]
    print(f"fuzzy 100k costs {fuzzy100[1] / exact100[1]:.1f}x the exact case end to end")


if __name__ == "__main__":
    main()
