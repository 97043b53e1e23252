"""Policy files and presets: loading, extends, and errors that name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.errors import UserError
from policies import PRESETS, Action, Policy, PolicyFileError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# --- presets ----------------------------------------------------------------------------------


def test_presets_exist_and_load_by_name() -> None:
    assert set(PRESETS) == {"strict", "default", "permissive", "offline"}
    for name in PRESETS:
        assert Policy.from_name(name).name == name
        assert Policy.load(name) == Policy.from_name(name)
    assert Policy() == Policy.from_name("default")


def test_preset_contents_follow_the_readme_table() -> None:
    strict, default = Policy.from_name("strict"), Policy.from_name("default")
    permissive, offline = Policy.from_name("permissive"), Policy.from_name("offline")
    assert strict.default is Action.ASK and strict.approval.default is Action.DENY
    assert strict.browser.schemes == ["https"] and strict.budgets.tool_calls == 50
    assert default.default is Action.ALLOW and not default.sandbox.network
    assert default.browser.allow_private == [] and ".git/**" in default.apply_patch.deny_paths
    assert permissive.sandbox.network and "127.0.0.0/8" in permissive.browser.allow_private
    assert permissive.budgets.tool_calls is None
    assert offline.rules["browser"] is Action.DENY and not offline.sandbox.network


def test_unknown_preset_is_a_user_error() -> None:
    with pytest.raises(UserError, match="presets: strict, default"):
        Policy.from_name("paranoid")
    with pytest.raises(UserError, match="no policy file or preset named 'paranoid'"):
        Policy.load("paranoid")


# --- YAML -------------------------------------------------------------------------------------


def test_yaml_file_extends_a_preset_and_merges_sections(tmp_path: Path) -> None:
    path = write(tmp_path, "team.yaml", """
        extends: strict
        rules:
          browser: allow
        budgets:
          tool_calls: 30
        browser:
          allow_private: ["127.0.0.1"]
    """)
    policy = Policy.load(path)
    assert policy.name == "team"  # named after the file unless it says
    assert policy.rules == {"browser.find": Action.ALLOW, "browser": Action.ALLOW}
    assert policy.budgets.tool_calls == 30
    assert policy.budgets.browser_pages == 20  # kept from strict
    assert policy.browser.schemes == ["https"] and policy.browser.allow_private == ["127.0.0.1"]
    assert policy.default is Action.ASK


def test_yaml_file_extends_another_file(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "extends: offline\nname: base\ndefault_timeout_s: 5\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: child\n")
    policy = Policy.load(str(child))
    assert policy.name == "child" and policy.default_timeout_s == 5
    assert policy.rules["browser"] is Action.DENY


def test_circular_extends_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(PolicyFileError, match="circular extends"):
        Policy.load(tmp_path / "a.yaml")


def test_python_and_yaml_build_the_same_policy() -> None:
    from_yaml = Policy.from_yaml("name: p\nrules: {python: deny}\nbudgets: {tool_calls: 3}\n")
    assert from_yaml == Policy(name="p", rules={"python": Action.DENY},
                               budgets=Policy().budgets.model_copy(update={"tool_calls": 3}))


def test_every_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "policy.yaml", """
        extends: default
        rules:
          browser.open: allow
          functions.*: maybe
        timeouts_s:
          python: 10
        budgets:
          tool_calls: lots
        browser:
          allow_domains: ["*.example.com", "bad..com"]
          allow_private: [127.0.0.1, "not a host!"]
          colour: blue
        sandbox:
          mounts: {/data: rx}
          memory_mb: -1
        apply_patch:
          deny_paths: [""]
        redaction:
          patterns: ["(unclosed"]
    """)
    with pytest.raises(PolicyFileError) as info:
        Policy.load(path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{path}:4: rules.functions.*: Input should be 'allow', 'deny' or 'ask'",
        f"{path}:8: budgets.tool_calls: Input should be a valid integer, unable to parse string "
        "as an integer",
        f"{path}:10: browser.allow_domains[1]: domain pattern 'bad..com' has an empty label",
        f"{path}:11: browser.allow_private[1]: 'not a host!' is neither an IP address, a network "
        "nor a host name",
        f"{path}:12: browser.colour: Extra inputs are not permitted",
        f"{path}:14: sandbox.mounts./data: Input should be 'ro' or 'rw'",
        f"{path}:15: sandbox.memory_mb: Input should be greater than 0",
        f"{path}:17: apply_patch.deny_paths[0]: empty path glob ''",
        f"{path}:19: redaction.patterns[0]: not a valid regular expression: missing ), "
        "unterminated subpattern at position 0",
    ]
    assert [p.line for p in info.value.problems] == [4, 8, 10, 11, 12, 14, 15, 17, 19]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [1,\n", "x.yaml:2: invalid YAML"),
        ("rules:\n  python: deny\n  python: allow\n", "x.yaml:3: rules.python: duplicate key"),
        ("- just\n- a list\n", "x.yaml:1: a policy file must be a mapping"),
        ("extends: nowhere\n", "x.yaml:1: extends: 'nowhere' is neither a preset"),
        ("rules:\n  'browser open': deny\n", "x.yaml:2: rules.browser open: 'browser open' is not"),
        ("budgets:\n  calls_per_tool:\n    python: -2\n",
         "x.yaml:3: budgets.calls_per_tool.python: Input should be greater than or equal to 0"),
        ("approval:\n  default: ask\n", "x.yaml:2: approval.default: Input should be"),
    ],
)
def test_yaml_mistakes_have_messages(text: str, message: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        Policy.from_yaml(text, source="x.yaml")
    assert str(info.value).startswith(message)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read"):
        Policy.load(tmp_path / "absent.yaml")
    assert Policy.load(write(tmp_path, "empty.yaml", "")) == Policy(name="empty")


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """
        apply_patch: {workspace: repo}
        sandbox: {mounts: {data: ro, /abs: rw}}
    """)
    policy = Policy.load(path)
    assert policy.apply_patch.workspace == tmp_path / "repo"
    assert policy.sandbox.mounts == {str(tmp_path / "data"): "ro", "/abs": "rw"}


def test_the_readme_section_examples_are_valid() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    text = readme[readme.index("## Policies"):]
    yaml_block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy = Policy.from_yaml(yaml_block, source="README.md")
    assert policy.rules["functions.apply_patch"] is Action.ASK
    assert policy.budgets.calls_per_tool == {"browser": 40, "python": 20}
    python_block = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(python_block, "README.md", "exec"), {})
    for name in PRESETS:
        assert f"`{name}`" in text
