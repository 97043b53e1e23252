"""Batch files: validation errors name file, line and field; inputs files through templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.batch import BatchFileError, load_batch


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    f = _write(tmp_path / "b.yaml", """\
defaults:
  engine: s.yaml
  limits: {max_turns: 3, bogus: 1}
  concurrency: 0
tasks:
  - id: a
    prompt: hi
  - id: a
    prompt: again
  - prompt: ""
    colour: red
""")
    with pytest.raises(BatchFileError) as info:
        load_batch(f)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{f}:2: defaults.engine: 's.yaml' is not an engine spec")
               for line in lines)
    assert any(line.startswith(f"{f}:3: defaults.limits.bogus: Extra inputs") for line in lines)
    assert any(line.startswith(f"{f}:4: defaults.concurrency:") for line in lines)
    assert any(line.startswith(f"{f}:10: tasks.2.prompt:") for line in lines)
    assert any(line.startswith(f"{f}:11: tasks.2.colour: Extra inputs") for line in lines)


def test_duplicates_and_checks(tmp_path: Path) -> None:
    f = _write(tmp_path / "b.yaml", """\
defaults:
  engine: scripted:script.yaml
  limits: {max_turns: 3}
tasks:
  - id: a
    prompt: hi
  - id: a
    prompt: twice
  - prompt: bad check
    check: nowhere.py:score
""")
    with pytest.raises(BatchFileError) as info:
        load_batch(f)
    text = str(info.value)
    assert f"{f}:7: tasks.1: duplicate task id 'a' (first at {f}:5)" in text
    assert f"{f}:9: tasks.2.check: cannot load 'nowhere.py:score'" in text


def test_not_yaml_and_empty(tmp_path: Path) -> None:
    with pytest.raises(BatchFileError, match=r"b.yaml:3: not valid YAML"):
        load_batch(_write(tmp_path / "b.yaml", "tasks:\n  - [\n"))
    with pytest.raises(BatchFileError, match="no tasks"):
        load_batch(_write(tmp_path / "c.yaml", "defaults: {}\n"))


def test_defaults_overrides_and_inputs(tmp_path: Path) -> None:
    _write(tmp_path / "q.jsonl", '{"qid": "q1", "question": "2+2", "answer": "4"}\n\n'
                                 '{"qid": "q2", "question": "3+3", "answer": "6"}\n')
    _write(tmp_path / "q.csv", "question,answer\n1+1,2\n")
    _write(tmp_path / "checks.py", "def score(result, task):\n    return 0.5\n")
    f = _write(tmp_path / "b.yaml", """\
defaults:
  engine: scripted:script.yaml
  policy: strict
  tools: [python]
  limits: {max_turns: 4}
  timeout_s: 30
  match: contains
tasks:
  - id: custom
    prompt: hello
    tools: []
    limits: {max_turns: 2}
    expected: [hi, hello]
    check: checks.py:score
inputs:
  file: q.jsonl
  prompt: "Compute {question}"
  id: "{qid}"
  expected: "{answer}"
""")
    defaults, tasks = load_batch(f)
    assert defaults.engine == f"scripted:{tmp_path}/script.yaml"  # relative to the file
    assert [t.id for t in tasks] == ["custom", "q1", "q2"]
    custom, q1, _ = tasks
    assert custom.config.tools == () and custom.config.limits.max_turns == 2
    assert custom.expected == ["hi", "hello"] and custom.check is not None
    assert q1.prompt == "Compute 2+2" and q1.expected == ["4"] and q1.match == "contains"
    assert q1.config.tools == ("python",) and q1.config.limits.max_turns == 4
    assert q1.config.policy == "strict" and q1.timeout_s == 30
    assert q1.source == f"{tmp_path}/q.jsonl:1"
    csv_file = _write(tmp_path / "c.yaml", "inputs: {file: q.csv, prompt: 'Sum {question}', "
                                           "expected: '{answer}'}\n")
    _, rows = load_batch(csv_file)
    assert [(t.id, t.prompt, t.expected) for t in rows] == [("q-2", "Sum 1+1", ["2"])]
    bad = _write(tmp_path / "d.yaml", "inputs: {file: q.jsonl, prompt: '{missing}'}\n")
    with pytest.raises(BatchFileError, match=r"q.jsonl:1: the template names 'missing'"):
        load_batch(bad)
