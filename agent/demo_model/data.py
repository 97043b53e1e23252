"""CLI: write ``train.jsonl`` and ``heldout.jsonl`` of synthetic tool-use examples.

    python -m agent.demo_model.data --out DIR --n 1000 --seed 0 \\
        --families python,browser,apply_patch,functions [--heldout 0.1]

The held-out split is drawn from its own task stream (its own RNG seeds), and any held-out task
whose text also appears in train is dropped, so it measures more than recall. ``DIR/stats.json``
records counts, rejections and timing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import anyio
import structlog

from agent.demo_model.example import Example
from agent.demo_model.generate import FAMILIES, generate

log = structlog.get_logger(__name__)


def write_jsonl(path: Path, examples: Sequence[Example]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(example.to_json() + "\n")


def read_jsonl(path: Path) -> list[Example]:
    with path.open(encoding="utf-8") as f:
        return [Example.from_json(line) for line in f if line.strip()]


async def build(out: Path, n: int, seed: int, families: Sequence[str], heldout: float,
                concurrency: int = 8) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    n_held = round(n * heldout)
    train, train_stats = await generate(n - n_held, seed, families, concurrency=concurrency)
    held, held_stats = await generate(n_held, seed, families, split="heldout",
                                      concurrency=concurrency)
    seen = {e.task for e in train}
    held = [e for e in held if e.task not in seen]
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", held)
    stats = {"train": asdict(train_stats), "heldout": asdict(held_stats),
             "heldout_written": len(held),
             "tokens": sum(len(e.tokens) for e in [*train, *held]),
             "masked_tokens": sum(sum(e.mask) for e in [*train, *held])}
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log.info("demo_model.written", out=str(out), train=len(train), heldout=len(held),
             rejected=train_stats.rejected + held_stats.rejected,
             seconds=round(train_stats.seconds + held_stats.seconds, 2))
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.demo_model.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1000, help="examples in all (both splits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--heldout", type=float, default=0.1, help="fraction held out")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not 0 <= args.heldout < 1 or args.n < 1:
        parser.error(f"bad arguments: unknown families {unknown}" if unknown
                     else "--n must be >= 1 and --heldout in [0, 1)")
    stats = anyio.run(build, args.out, args.n, args.seed, families, args.heldout,
                      args.concurrency)
    rejected = stats["train"]["rejected"] + stats["heldout"]["rejected"]  # type: ignore[index]
    return 1 if rejected else 0


if __name__ == "__main__":
    raise SystemExit(main())
