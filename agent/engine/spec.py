"""One string names an engine, everywhere (flags, config files, batch YAML).

    engine = engine_from_spec("scripted:tests/script.yaml")
    engine = engine_from_spec("local:/models/gpt-oss-20b", device="cuda", max_batch=32)

Specs:

- ``scripted:FILE`` replays completions written as Harmony text: a YAML/JSON list of strings, or a
  mapping ``{completions: [...], token_delay_s: 0.01}``. A transcript saved by
  ``agent run --transcript`` is a valid FILE too (its ``completions`` replay the run).
- ``local:DIR`` the bundled gpt-oss engine on a checkpoint folder (extra: ``engine``);
  ``local:demo`` is the small trained demo model shipped with the package (runs on a CPU).
- ``http://...`` / ``https://...`` an OpenAI-compatible completions server.
- ``vllm:MODEL`` vLLM in this process (extra: ``vllm``).

Engines are imported only when named, so a missing optional dependency costs nothing until it is
asked for, and then says which extra to install.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import yaml

from agent.engine.base import Engine, EngineEvent, EngineRequest, TokenDelta
from agent.engine.scripted import ScriptedEngine
from agent.errors import UserError

KINDS = ("scripted:FILE", "local:DIR", "local:demo", "http(s)://URL", "vllm:MODEL")

# Settings each engine's constructor takes; others are ignored for that engine.
_ACCEPTS: dict[str, tuple[str, ...]] = {
    "local": ("device", "dtype", "max_batch", "max_context", "prefill_chunk"),
    "http": ("api_key", "model", "timeout_s", "headers"),
    "vllm": ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len"),
    "scripted": ("token_delay_s", "chunk_tokens"),
}


class PacedEngine:
    """Wraps an engine to sleep between token chunks: a scripted run that takes real time
    (progress displays, Ctrl-C and crash tests)."""

    def __init__(self, inner: Engine, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        stream = self.inner.generate(request)
        try:
            async for event in stream:
                if isinstance(event, TokenDelta):
                    await anyio.sleep(self.delay_s)
                yield event
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self.inner.aclose()


def load_script(path: Path) -> tuple[list[str], dict[str, Any]]:
    """Completions and options from a scripted-engine file.

    Raises:
        UserError: the file is missing or holds something other than completions.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"scripted engine: cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UserError(f"scripted engine: {path} is not valid YAML/JSON ({exc})") from exc
    options: dict[str, Any] = {}
    if isinstance(data, dict):
        options = {k: data[k] for k in ("token_delay_s", "chunk_tokens") if k in data}
        data = data.get("completions")
    if not isinstance(data, list) or not all(isinstance(c, str) for c in data) or not data:
        raise UserError(f"scripted engine: {path} must list completions as Harmony text, e.g. "
                        "['<|channel|>final<|message|>Hello!<|return|>'] (or a mapping with "
                        "'completions:')")
    return data, options


def scripted_engine(completions: Sequence[str], *, token_delay_s: float = 0.0,
                    chunk_tokens: int = 1) -> Engine:
    engine = ScriptedEngine(list(completions), chunk_tokens=int(chunk_tokens))
    return PacedEngine(engine, float(token_delay_s)) if token_delay_s else engine


def _optional(module: str, attr: str, extra: str) -> Callable[..., Any]:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise UserError(f"{module} is not part of this installation yet") from exc
        raise UserError(f"this engine needs the '{extra}' extra: pip install 'oss-agent[{extra}]' "
                        f"(missing module: {exc.name})") from exc
    return getattr(mod, attr)  # type: ignore[no-any-return]


def _pick(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k in _ACCEPTS[kind] and v is not None}


def engine_from_spec(spec: str, **settings: Any) -> Engine:
    """Build the engine a spec names; ``settings`` the engine does not take are ignored.

    Raises:
        UserError: an unknown spec, a missing file or folder, or a missing optional extra.
    """
    kind, sep, rest = spec.partition(":")
    if spec.startswith(("http://", "https://")):
        cls = _optional("agent.engine.http", "HttpEngine", "http")
        return cls(spec, **_pick("http", settings))  # type: ignore[no-any-return]
    if not sep or not rest:
        raise UserError(f"engine spec {spec!r}: expected one of {', '.join(KINDS)}")
    if kind == "scripted":
        completions, options = load_script(Path(rest).expanduser())
        return scripted_engine(completions, **{**options, **_pick("scripted", settings)})
    if kind == "local":
        from agent.demo_model.shipped import checkpoint_dir

        path = checkpoint_dir(Path(rest).expanduser())
        if not path.is_dir():
            raise UserError(f"engine spec {spec!r}: {path} is not a checkpoint folder")
        cls = _optional("agent.engine.gptoss", "GptOssEngine", "engine")
        return cls.from_checkpoint(path, **_pick("local", settings))  # type: ignore[no-any-return]
    if kind == "vllm":
        cls = _optional("agent.engine.vllm", "VllmEngine", "vllm")
        return cls(rest, **_pick("vllm", settings))  # type: ignore[no-any-return]
    raise UserError(f"engine spec {spec!r}: unknown kind {kind!r}; expected one of "
                    f"{', '.join(KINDS)}")


def is_scripted(engine: Engine) -> bool:
    """True for engines that replay a script (recipes then use recorded data, not the web)."""
    inner = engine.inner if isinstance(engine, PacedEngine) else engine
    from agent.engine.scripted import FunctionEngine

    return isinstance(inner, ScriptedEngine | FunctionEngine)
