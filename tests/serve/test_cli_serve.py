"""``agent serve CHECKPOINT`` as a real process: health, HttpEngine parity, graceful SIGTERM.

Also one scripted agent run whose engine is an HttpEngine pointed at a served ScriptedEngine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import torch

from agent import Agent, tool
from agent.engine.base import EngineRequest, Finished, FinishReason, SamplingParams
from agent.engine.gptoss import GptOssEngine
from agent.engine.http import HttpEngine
from agent.engine.scripted import ScriptedEngine
from agent.events import StopReason
from agent.harmony.codec import HarmonyCodec
from agent.serve import build_app, running

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tiny_checkpoint: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve", str(tiny_checkpoint), "--port", str(port),
         "--max-context", "256", "--max-batch", "4", "--grace", "20"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"agent serve did not start: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.2)
    yield proc, url
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def test_served_checkpoint_matches_in_process_and_stops_gracefully(
        server: tuple[subprocess.Popen[bytes], str], tiny_checkpoint: Path) -> None:
    proc, url = server
    request = EngineRequest((4, 5, 6, 7), sampling=SamplingParams(temperature=0, max_tokens=8))
    local = GptOssEngine.from_checkpoint(tiny_checkpoint, dtype=torch.float32, max_batch=4,
                                         max_context=256)
    async with local, HttpEngine(url + "/v1", timeout=60) as http:
        assert (await http.resolve_model()) == tiny_checkpoint.name
        want = [t async for e in local.generate(request) if not isinstance(e, Finished)
                for t in e.token_ids]
        got = [t async for e in http.generate(request) if not isinstance(e, Finished)
               for t in e.token_ids]
        assert got == want
        # SIGTERM while a long request streams: it still finishes, then the process exits 0.
        long = EngineRequest((4, 5), sampling=SamplingParams(temperature=0, max_tokens=120))
        events = []
        async for event in http.generate(long):
            if not events:
                proc.send_signal(signal.SIGTERM)
            events.append(event)
    assert isinstance(events[-1], Finished) and events[-1].reason is FinishReason.LENGTH
    assert sum(len(e.token_ids) for e in events[:-1]) == 120
    assert await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30)) == 0


async def test_agent_run_through_http() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    script = ScriptedEngine([
        '<|channel|>commentary to=functions.add <|constrain|>json<|message|>{"a": 2, "b": 3}'
        "<|call|>",
        "<|channel|>final<|message|>2 + 3 = 5<|return|>",
    ])
    async with running(build_app(script, model_name="gpt-oss-scripted")) as url:
        async with HttpEngine(url + "/v1") as engine:
            result = await Agent(engine, tools=[add]).run("What is 2 + 3?")
    assert result.stop_reason is StopReason.FINAL
    assert result.final_answer == "2 + 3 = 5"
    prompt = HarmonyCodec().decode(script.requests[1].prompt_tokens)
    assert "<|start|>functions.add to=assistant<|channel|>commentary<|message|>5<|end|>" in prompt


def test_serve_demo_health_and_bad_stream_interval() -> None:
    bad = subprocess.run([sys.executable, "-m", "agent", "serve", "demo", "--stream-interval", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "--stream-interval must be >= 1" in bad.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve", "demo", "--port", str(port), "--stream-interval", "4"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"agent serve demo did not start: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        assert health.json()["model"] == "demo"
    finally:
        proc.kill()
        proc.wait()
