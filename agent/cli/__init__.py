"""The ``agent`` command. Each subcommand lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent.errors import OssAgentError
from agent.logs import configure_logging

# Modules that add a subcommand; one missing (an optional extra not installed) is skipped.
SUBCOMMANDS = (
    "agent.cli.render",
    "agent.cli.run",
    "agent.cli.chat",
    "agent.cli.batch",
    "agent.cli.config",
    "agent.cli.serve",
    "agent.cli.sandbox",
    "agent.cli.model",
)


def build_parser() -> argparse.ArgumentParser:
    from agent import __version__

    parser = argparse.ArgumentParser(
        prog="agent", description="oss-agent: run gpt-oss agents with tools."
    )
    parser.add_argument("--version", action="version", version=f"oss-agent {__version__}")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines to stderr")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module: show it
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Secrets of the default policy (API-key variables, token patterns) never reach a log line.
    from policies import Policy, redaction_processor

    configure_logging(json=args.log_json, level=args.log_level,
                      extra=[redaction_processor(Policy())])
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except OssAgentError as exc:
        print(f"agent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("agent: interrupted", file=sys.stderr)
        return 130
