"""Settings for the ``agent`` commands: flags, then a config file, then env vars, then defaults.

    settings = resolve_settings({"engine": args.engine})     # flags that were given
    settings.values.engine, settings.sources["engine"]        # "flag", "config:<path>", "env:..."

The config file is TOML, at ``$OSS_AGENT_CONFIG`` or ``$XDG_CONFIG_HOME/oss-agent/config.toml``
(``~/.config/oss-agent/config.toml``)::

    engine = "local:/models/gpt-oss-20b"
    tools = ["browser", "python"]
    policy = "default"
    device = "cuda"

    [engine_options]            # passed to the engine's constructor as keywords
    max_batch = 32

Every key can also come from an env var named ``OSS_AGENT_<KEY>`` (``OSS_AGENT_ENGINE``, lists
comma-separated: ``OSS_AGENT_TOOLS=browser,python``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import UserError

ENV_PREFIX = "OSS_AGENT_"


class Settings(BaseModel):
    """What every command shares. ``None`` means "not set anywhere"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str | None = Field(None, description="engine spec: local:DIR, scripted:FILE, "
                               "http(s)://URL, vllm:MODEL")
    tools: tuple[str, ...] = Field((), description="toolkits: browser, python, apply_patch, "
                                   "or module:attr for your own @tool functions/classes")
    policy: str | None = Field(None, description="policy preset name or YAML file")
    reasoning: Literal["low", "medium", "high"] = Field("medium", description="reasoning effort")
    instructions: str | None = Field(None, description="developer instructions")
    max_turns: int = Field(50, ge=1, description="turns before a run stops")
    deadline_s: float | None = Field(None, gt=0, description="wall-clock limit of one run")
    temperature: float = Field(1.0, ge=0, description="sampling temperature")
    device: str = Field("cpu", description="device for the local engine (cpu, cuda, cuda:1)")
    concurrency: int = Field(8, ge=1, description="tasks at once in `agent batch`")
    engine_options: dict[str, Any] = Field(default_factory=dict,
                                           description="keywords for the engine's constructor")
    toolkit_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per toolkit: keywords for its config "
        "([toolkit_options.browser] search = \"exa\")")

    @field_validator("tools", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value


@dataclass(frozen=True, slots=True)
class ResolvedSettings:
    values: Settings
    sources: dict[str, str]  # key -> "flag" | "config:<path>" | "env:<NAME>" | "default"
    config_path: Path
    config_found: bool


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("OSS_AGENT_CONFIG"):
        return Path(env["OSS_AGENT_CONFIG"]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "oss-agent" / "config.toml"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UserError(f"cannot read the config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: "
                        f"{', '.join(Settings.model_fields)}")
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    found = {}
    for key in Settings.model_fields:
        name = ENV_PREFIX + key.upper()
        if key not in ("engine_options", "toolkit_options") and env.get(name):
            found[key] = (env[name], f"env:{name}")
    return found


def resolve_settings(flags: Mapping[str, Any] | None = None, *,
                     env: Mapping[str, str] | None = None,
                     path: Path | None = None) -> ResolvedSettings:
    """Merge the layers; ``flags`` holds only flags the user gave (None values are ignored).

    Raises:
        UserError: an unreadable config file, an unknown key, or a value of the wrong type
            (the message names the layer it came from).
    """
    env = os.environ if env is None else env
    path = path or config_path(env)
    config = _read_config(path)
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers: list[dict[str, tuple[Any, str]]] = [
        _from_env(env),
        {k: (v, f"config:{path}") for k, v in config.items()},
        {k: (v, "flag") for k, v in (flags or {}).items() if v is not None and v != ()},
    ]
    for layer in layers:  # lowest precedence first: later layers overwrite
        for key, (value, source) in layer.items():
            merged[key] = value
            sources[key] = source
    try:
        values = Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"{key} (from {sources.get(key, 'default')}): {err['msg']}")
        raise UserError("bad setting: " + "; ".join(problems)) from None
    for key in Settings.model_fields:
        sources.setdefault(key, "default")
    return ResolvedSettings(values, sources, path, path.exists())
