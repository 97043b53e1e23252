"""The training CLI on the CPU: a few steps, a checkpoint the engine loads, resume from state."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from agent.demo_model.data import main as data_main
from agent.demo_model.train import collate, main, read_examples
from agent.engine.gptoss.weights import load_weights


def test_collate_targets_are_the_masked_next_tokens(tmp_path: Path) -> None:
    from agent.demo_model.example import Example

    a = Example([1, 2, 3, 4], [0, 0, 1, 1], "python", "t", "a")
    b = Example([5, 6], [0, 1], "python", "t", "a")
    inputs, pad, where, targets = collate([a, b], device=__import__("torch").device("cpu"))
    assert inputs.tolist() == [[1, 2, 3], [5, 0, 0]]
    assert pad.tolist() == [[False, False, False], [False, True, True]]
    # position t predicts token t + 1 where mask[t + 1] is set
    assert where.tolist() == [1, 2, 3] and targets.tolist() == [3, 4, 6]


def test_train_exports_a_loadable_checkpoint_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert data_main(["--out", str(data), "--n", "8", "--seed", "5", "--heldout", "0.25",
                      "--families", "functions,python"]) == 0
    # gzip is accepted too (what travels to the GPU machine)
    raw = (data / "train.jsonl").read_bytes()
    (data / "train.jsonl").unlink()
    (data / "train.jsonl.gz").write_bytes(gzip.compress(raw))
    assert len(read_examples(data, "train")) == 6

    run = tmp_path / "run"
    args = ["--data", str(data), "--out", str(run), "--device", "cpu", "--batch-tokens", "1024",
            "--save-every", "1", "--log-every", "1", "--warmup", "1"]
    assert main([*args, "--steps", "2"]) == 0
    weights = load_weights(run / "checkpoint")
    assert weights.embedding.shape == (201_088, 96)
    assert set(json.loads((run / "eval.json").read_text())) == {"token_accuracy", "exact",
                                                                 "examples"}
    state = (run / "state.pt").stat().st_mtime_ns
    assert main([*args, "--steps", "3"]) == 0  # resumes at step 2: one more step
    import torch

    assert torch.load(run / "state.pt", weights_only=False)["step"] == 3
    assert (run / "state.pt").stat().st_mtime_ns > state
