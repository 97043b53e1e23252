"""structlog set up once: readable on a terminal, JSON lines when asked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, TextIO, cast

import structlog
from structlog.typing import Processor


class _Stderr:
    """Whatever ``sys.stderr`` is at write time (tests and tools swap it; a bound file closes)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json: bool = False, level: str = "warning",
                      extra: Sequence[Processor] = ()) -> None:
    """Configure structlog for the process (the CLI calls it; libraries never should).

    ``extra`` processors run before rendering: the policy's redaction processor goes there so
    secrets never reach a log line.
    """
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *extra,
            structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )
