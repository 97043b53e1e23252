"""The data CLI: both splits written, no held-out task seen in train."""

from __future__ import annotations

from pathlib import Path

from agent.demo_model.data import main, read_jsonl


def test_cli_writes_both_splits(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--n", "10", "--seed", "3",
                 "--families", "functions,python"]) == 0
    train, held = read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "heldout.jsonl")
    assert len(train) == 9 and len(held) <= 1
    assert {e.family for e in train} == {"functions", "python"}
    assert not {e.task for e in held} & {e.task for e in train}
