"""functions.apply_patch as the model sees it: declaration, calling convention, policy, a run."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import openai_harmony as oh
import pytest
from patch_helpers import snapshot, wrap

from agent import Agent, ScriptedEngine
from agent.errors import InvalidArguments, PolicyDenied, UnknownRecipient
from agent.events import Outcome
from agent.harmony.codec import HarmonyCodec
from policies.config import ApplyPatchPolicy, Budgets, Policy
from policies.run import RunPolicy
from toolkits.apply_patch import INSTRUCTIONS, ApplyPatchToolkit, HunkMismatch, PathRefused
from toolkits.base import RunContext, ToolCall

pytestmark = pytest.mark.anyio

PATCH = wrap("*** Add File: notes/todo.txt", "+buy milk")


def patch_call(arguments: str, method: str = "apply_patch") -> ToolCall:
    return ToolCall(f"functions.{method}", "functions", method, arguments, channel="commentary")


def make_ctx(tmp_path: Path, policy: Policy | None = None) -> RunContext:
    return RunContext("run-1", tmp_path / "files", RunPolicy(policy))


def test_declared_like_gpt_oss_chat() -> None:
    ns = ApplyPatchToolkit().namespace()
    assert (ns.name, ns.placement, ns.description) == ("functions", "developer", INSTRUCTIONS)
    (spec,) = ns.tools
    assert (spec.name, spec.description) == ("apply_patch", "Patch a file")
    assert spec.parameters == {
        "type": "string", "description": "Formatted patch code",
        "default": "*** Begin Patch\n*** End Patch\n",
    }


def test_rendered_developer_message_is_the_references() -> None:
    codec = HarmonyCodec()
    ours = codec.developer_message(None, [ApplyPatchToolkit().namespace()])
    assert ours is not None
    # exactly what gpt_oss/chat.py builds with --apply-patch and no developer message
    reference = oh.Message.from_role_and_content(
        oh.Role.DEVELOPER,
        oh.DeveloperContent.new().with_instructions(INSTRUCTIONS).with_function_tools([
            oh.ToolDescription.new("apply_patch", "Patch a file", parameters={
                "type": "string", "description": "Formatted patch code",
                "default": "*** Begin Patch\n*** End Patch\n",
            }),
        ]),
    )
    text = codec.encoding.decode(codec.encoding.render(ours))
    assert codec.encoding.render(ours) == codec.encoding.render(reference)
    assert "§ `apply_patch` Specification" in text
    assert "// Patch a file\ntype apply_patch = (_: string) => any;" in text


@pytest.mark.parametrize(
    "arguments",
    [
        PATCH,
        json.dumps({"input": PATCH}),
        json.dumps({"patch": PATCH}),
        json.dumps({"whatever": PATCH}),
        json.dumps(PATCH),
        json.dumps(["apply_patch", PATCH]),
        "```diff\n" + PATCH + "```\n",
        "<<'EOF'\n" + PATCH + "EOF\n",
    ],
)
async def test_raw_and_wrapped_patches_are_accepted(tmp_path: Path, arguments: str) -> None:
    async with ApplyPatchToolkit() as kit, kit.session(make_ctx(tmp_path)) as session:
        reply = await session.call(patch_call(arguments))
    assert reply.text == "Success. Updated the following files:\nA notes/todo.txt\n"
    assert reply.metadata["added"] == ["notes/todo.txt"] and reply.metadata["bytes_written"] == 9
    assert (tmp_path / "files/notes/todo.txt").read_text() == "buy milk\n"


async def test_json_without_a_patch_and_unknown_methods_are_refused(tmp_path: Path) -> None:
    async with ApplyPatchToolkit() as kit, kit.session(make_ctx(tmp_path)) as session:
        with pytest.raises(InvalidArguments, match="raw patch text"):
            await session.call(patch_call(json.dumps({"a": 1, "b": 2})))
        with pytest.raises(UnknownRecipient, match="functions.apply_patch"):
            await session.call(patch_call(PATCH, method="apply_diff"))


async def test_policy_workspace_globs_size_and_budget(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    policy = Policy(
        apply_patch=ApplyPatchPolicy(
            workspace=workspace, allow_paths=["notes/**"], max_patch_bytes=200
        ),
        budgets=Budgets(apply_patch_bytes=12),
    )
    ctx = make_ctx(tmp_path, policy)
    async with ApplyPatchToolkit() as kit, kit.session(ctx) as session:
        await session.call(patch_call(PATCH))
        assert (workspace / "notes/todo.txt").exists()
        with pytest.raises(PathRefused):
            await session.call(patch_call(wrap("*** Add File: src/x.py", "+x")))
        with pytest.raises(PolicyDenied, match="more than the 200 allowed"):
            await session.call(patch_call(wrap("*** Add File: notes/big", "+" + "x" * 300)))
        before = snapshot(workspace)
        with pytest.raises(PolicyDenied, match="budget exhausted"):
            await session.call(patch_call(wrap("*** Add File: notes/more.txt", "+four")))
        assert snapshot(workspace) == before
    assert ctx.policy.spent["apply_patch_bytes"] == 9


async def test_concurrent_calls_in_one_session_apply_one_after_the_other(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    (ctx.files_dir).mkdir(parents=True)
    (ctx.files_dir / "count.txt").write_text("0\n")
    replies = []
    async with ApplyPatchToolkit() as kit, kit.session(ctx) as session:
        async def bump(k: int) -> None:
            text = wrap("*** Update File: count.txt", "@@", f"-{k}", f"+{k + 1}")
            for _ in range(200):  # wait for the previous bump: a mismatch until then
                try:
                    replies.append(await session.call(patch_call(text)))
                    return
                except HunkMismatch:
                    await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            for k in range(5):
                tg.start_soon(bump, k)
    assert (ctx.files_dir / "count.txt").read_text() == "5\n" and len(replies) == 5


async def test_end_to_end_through_a_scripted_run(tmp_path: Path) -> None:
    def call(body: str) -> str:
        return f"<|channel|>commentary to=functions.apply_patch<|message|>{body}<|call|>"

    bad = wrap("*** Update File: hello.py", "@@", "-print('hi')", "+print('hello')")
    good = wrap("*** Update File: hello.py", "@@", '-print("hi")', '+print("hello")')
    engine = ScriptedEngine([
        call(wrap("*** Add File: hello.py", '+print("hi")')),
        call(bad),
        call(good),
        "<|channel|>final<|message|>Done.<|return|>",
    ])
    async with Agent(engine, [ApplyPatchToolkit()], files_root=tmp_path) as agent:
        result = await agent.run("Write hello.py, then make it say hello.")
    assert result.final_answer == "Done."
    outcomes = [(r.outcome, r.output.splitlines()[0]) for r in result.tool_calls]
    assert outcomes[0] == (Outcome.OK, "Success. Updated the following files:")
    assert outcomes[1][0] is Outcome.ERROR and "does not match 'hello.py'" in result.tool_calls[1].output
    assert "print(\"hi\")" in result.tool_calls[1].output  # the closest line is shown
    assert outcomes[2] == (Outcome.OK, "Success. Updated the following files:")
    assert result.files_dir is not None
    assert (result.files_dir / "hello.py").read_text() == 'print("hello")\n'
    prompt = agent.codec.decode(engine.requests[0].prompt_tokens)
    assert "type apply_patch = (_: string) => any;" in prompt
    assert "§ `apply_patch` Specification" in prompt
