"""``agent config``: the settings every command would use, and where each one comes from."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.cli.common import add_agent_flags, settings_from_args
from agent.settings import ENV_PREFIX, Settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "config", help="show the resolved settings and where each comes from",
        description="Show the settings the agent commands use. Precedence: flags > config file "
        f"($OSS_AGENT_CONFIG or ~/.config/oss-agent/config.toml) > {ENV_PREFIX}* env vars > "
        "defaults.")
    p.add_argument("--json", action="store_true", help="print the settings as JSON")
    p.add_argument("--path", action="store_true", help="print only the config file's path")
    add_agent_flags(p, batch=True)
    p.set_defaults(handler=handle)


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple | list):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return json.dumps(value) if value else "-"
    return str(value)


def handle(args: argparse.Namespace) -> int:
    resolved = settings_from_args(args)
    console = Console(highlight=False)
    if args.path:
        console.out(str(resolved.config_path))
        return 0
    if args.json:
        data = {"config_file": str(resolved.config_path), "config_found": resolved.config_found,
                "settings": resolved.values.model_dump(mode="json"), "sources": resolved.sources}
        console.out(json.dumps(data, indent=2))
        return 0
    table = Table(title="oss-agent settings", title_justify="left")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("source", style="dim")
    table.add_column("env var", style="dim")
    for key in Settings.model_fields:
        env = "" if key in ("engine_options", "toolkit_options") else ENV_PREFIX + key.upper()
        table.add_row(key, _show(getattr(resolved.values, key)), resolved.sources[key], env)
    console.print(table)
    found = "" if resolved.config_found else " (not found)"
    console.print(f"[dim]config file: {resolved.config_path}{found}[/dim]")
    return 0
