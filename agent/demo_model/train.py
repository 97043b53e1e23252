"""Train the demo model on generated examples; resumable; exports the checkpoint at the end.

    python -m agent.demo_model.train --data DATA_DIR --out RUN_DIR --steps 2000

``DATA_DIR`` holds ``train.jsonl`` and ``heldout.jsonl`` (:mod:`agent.demo_model.data`; ``.gz``
accepted). ``RUN_DIR/state.pt`` is written every ``--save-every`` steps and at the end, and a
later call with the same ``--out`` resumes from it. The finished model is exported to
``RUN_DIR/checkpoint`` (:mod:`agent.demo_model.export`) and teacher-forced accuracy on the
held-out split goes to ``RUN_DIR/eval.json``.

Loss is on the assistant's tokens only (the examples' masks). Batches group examples of similar
length, padded to about ``--batch-tokens``. The last ``--qat`` fraction of the steps trains with
MXFP4 rounding in the forward pass, so the exported weights keep what was learned.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from agent.demo_model.example import Example
from agent.demo_model.export import export_checkpoint, load_trainable
from agent.demo_model.model import TrainableGptOss
from agent.logs import configure_logging

log = structlog.get_logger(__name__)
_TIMING_STEPS = (10, 40)  # the steps timed before --minutes shortens the run
_LOSS_CHUNK = 4096  # positions per unembedding chunk: full-vocabulary logits are 0.8 MB a row


def read_examples(folder: Path, split: str) -> list[Example]:
    for path in (folder / f"{split}.jsonl", folder / f"{split}.jsonl.gz"):
        if path.exists():
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
                return [Example.from_json(line) for line in f if line.strip()]
    raise FileNotFoundError(f"no {split}.jsonl(.gz) in {folder}")


def batches(examples: Sequence[Example], batch_tokens: int, rng: random.Random,
            ) -> Iterator[list[Example]]:
    """Endless shuffled batches of similar-length examples, ~``batch_tokens`` padded tokens each."""
    while True:
        order = sorted(examples, key=lambda e: len(e.tokens) + rng.random() * 64)
        chunk: list[list[Example]] = []
        current: list[Example] = []
        for example in order:
            if current and (len(current) + 1) * len(example.tokens) > batch_tokens:
                chunk.append(current)
                current = []
            current.append(example)
        if current:
            chunk.append(current)
        rng.shuffle(chunk)
        yield from chunk


def collate(batch: Sequence[Example], device: torch.device,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(inputs, pad, target positions (flat), targets)`` for next-token loss on masked tokens."""
    width = max(len(e.tokens) for e in batch) - 1
    inputs = torch.zeros(len(batch), width, dtype=torch.long)
    labels = torch.zeros(len(batch), width, dtype=torch.long)
    learn = torch.zeros(len(batch), width, dtype=torch.bool)
    pad = torch.ones(len(batch), width, dtype=torch.bool)
    for row, e in enumerate(batch):
        n = len(e.tokens) - 1
        tokens = torch.tensor(e.tokens)
        inputs[row, :n], labels[row, :n] = tokens[:-1], tokens[1:]
        learn[row, :n] = torch.tensor(e.mask[1:], dtype=torch.bool)
        pad[row, :n] = False
    where = learn.flatten().nonzero().squeeze(1)
    return (inputs.to(device), pad.to(device), where.to(device),
            labels.flatten()[where].to(device))


def _chunk_loss(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy((h @ w.T).float(), targets, reduction="sum")


def masked_loss(model: TrainableGptOss, inputs: torch.Tensor, pad: torch.Tensor,
                where: torch.Tensor, targets: torch.Tensor, quantize: bool,
                ) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target positions and how many correct at top-1."""
    h = model.hidden(inputs, pad, quantize=quantize).flatten(0, 1)[where]
    w = model.unembedding_weight(quantize=quantize)
    total = h.new_zeros((), dtype=torch.float32)
    correct = 0
    for start in range(0, len(where), _LOSS_CHUNK):
        hs, ts = h[start:start + _LOSS_CHUNK], targets[start:start + _LOSS_CHUNK]
        # Recompute each chunk's logits in backward instead of keeping them all.
        total = total + checkpoint(_chunk_loss, hs, w, ts, use_reentrant=False)
        with torch.no_grad():
            correct += int(((hs @ w.T).argmax(-1) == ts).sum())
    return total, correct


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(model: TrainableGptOss, examples: Sequence[Example], device: torch.device,
             ) -> dict[str, float]:
    """Teacher-forced top-1 accuracy on masked tokens, and the share of examples with all right."""
    model.eval()
    tokens = right = whole = 0
    for e in examples:  # one at a time: no padding, and held-out sets are small
        inputs, pad, where, targets = collate([e], device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = model.hidden(inputs, pad, quantize=True).flatten(0, 1)[where]
            hits = (h @ model.unembedding_weight(quantize=True).T).argmax(-1) == targets
        tokens += len(targets)
        right += int(hits.sum())
        whole += bool(hits.all())
    model.train()
    return {"token_accuracy": right / max(1, tokens), "exact": whole / max(1, len(examples)),
            "examples": len(examples)}


def train(args: argparse.Namespace) -> dict[str, float]:
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    train_set = read_examples(args.data, "train")
    held = read_examples(args.data, "heldout")
    args.out.mkdir(parents=True, exist_ok=True)
    model = (load_trainable(args.init) if args.init else TrainableGptOss()).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices; not norms, biases, sinks
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    state_file = args.out / "state.pt"
    step = 0
    if state_file.exists():
        state = torch.load(state_file, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        log.info("train.resumed", step=step)
    rng = random.Random(f"{args.seed}:{step}")
    stream = batches(train_set, args.batch_tokens, rng)
    qat_from = int(args.steps * (1 - args.qat))
    started, seen, window_loss, window_right, window_n = time.perf_counter(), 0, 0.0, 0, 0
    timed_from = started
    log.info("train.start", examples=len(train_set), heldout=len(held), steps=args.steps,
             params=sum(p.numel() for p in model.parameters()))

    def save() -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step},
                   state_file.with_suffix(".tmp"))
        state_file.with_suffix(".tmp").replace(state_file)

    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        inputs, pad, where, targets = collate(next(stream), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss_sum, right = masked_loss(model, inputs, pad, where, targets, step >= qat_from)
        loss = loss_sum / max(1, len(targets))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += inputs.numel()
        window_loss += float(loss_sum.detach())
        window_right += right
        window_n += len(targets)
        if step % args.log_every == 0 or step == args.steps:
            log.info("train.step", step=step, loss=round(window_loss / max(1, window_n), 4),
                     acc=round(window_right / max(1, window_n), 4), qat=step > qat_from,
                     tokens_per_s=round(seen / (time.perf_counter() - started)))
            window_loss, window_right, window_n = 0.0, 0, 0
        if step % args.save_every == 0:
            save()
        if step == _TIMING_STEPS[0]:
            timed_from = time.perf_counter()
        if args.minutes and step == _TIMING_STEPS[1]:
            # Fit the run into the time given: timed after the first steps' warm-up, before
            # the schedule's decay begins, so the shortened schedule is still a whole one.
            per_step = (time.perf_counter() - timed_from) / (_TIMING_STEPS[1] - _TIMING_STEPS[0])
            left = args.minutes * 60 - (time.perf_counter() - started)
            fit = step + int(left / per_step)
            if fit < args.steps:
                args.steps, qat_from = fit, int(fit * (1 - args.qat))
                log.info("train.shortened", steps=fit, seconds_per_step=round(per_step, 3))
    save()
    result = evaluate(model, held, device)
    (args.out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    export_checkpoint(model.float(), args.out / "checkpoint")
    log.info("train.done", **result, seconds=round(time.perf_counter() - started, 1))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.demo_model.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-tokens", type=int, default=65536)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--init", type=Path, help="start from this exported checkpoint")
    parser.add_argument("--minutes", type=float, help="shorten --steps to end in this time")
    parser.add_argument("--qat", type=float, default=0.3, help="fraction of steps with MXFP4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--save-every", type=int, default=250)
    args = parser.parse_args(argv)
    configure_logging(level="info")
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
