"""Secrets out of everything the model, an event consumer or a log reader sees.

A :class:`Redactor` replaces the values of chosen environment variables (names may be globs:
``*_API_KEY``) and regex patterns (API keys, tokens, private keys). The loop runs tool output
through it; :func:`redaction_processor` does the same for every structlog line::

    configure_logging(extra=[redaction_processor(policy)])
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from policies.config import Policy, RedactionPolicy
    from policies.run import RunPolicy

#: Shorter values are too likely to occur by chance ("1", "true") to be worth hiding.
MIN_SECRET_LEN = 6


@functools.lru_cache(maxsize=8)
def _secret_values(globs: tuple[str, ...], env: tuple[tuple[str, str], ...]) -> list[str]:
    """Values of the variables whose names match ``globs``; cached, since every run asks and the
    environment rarely changes (a changed environment is a new key)."""
    upper = [g.upper() for g in globs]
    values = {v for name, v in env if len(v) >= MIN_SECRET_LEN
              and any(fnmatch.fnmatchcase(name.upper(), g) for g in upper)}
    # Longest first, so a secret that contains another is replaced whole.
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Replaces secrets in text and in nested data (dicts, lists, tuples of strings).

    Environment variables are read when the redactor is made (one per run), so a secret set
    later in the process is not known to runs already going.
    """

    def __init__(self, policy: RedactionPolicy, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._literals = _secret_values(tuple(policy.env_vars), tuple(env.items()))
        # One regex per pattern, applied in turn: each keeps its literal prefix ("sk-", "ghp_"),
        # which lets the engine skip ahead; one big alternation was 2x slower on 30 kB outputs
        # (benchmarks/bench_policies.py).
        self._patterns = [re.compile(p) for p in policy.patterns]
        self.replacement = policy.replacement

    def redact(self, text: str) -> str:
        if not text:
            return text
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, self.replacement)
        for pattern in self._patterns:
            text = pattern.sub(self.replacement, text)
        return text

    def redact_value(self, value: Any) -> Any:
        """Strings anywhere inside ``value`` (dicts, lists, tuples, dataclasses such as events)
        redacted; other values returned unchanged."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v) for v in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # Events are frozen dataclasses: rebuild only those whose strings changed.
            changes = {}
            for f in dataclasses.fields(value):
                if not f.init:
                    continue
                old = getattr(value, f.name)
                new = self.redact_value(old)
                if new is not old and new != old:
                    changes[f.name] = new
            return dataclasses.replace(value, **changes) if changes else value
        return value


def redaction_processor(
    source: Policy | RunPolicy | Redactor,
) -> Callable[[Any, str, dict[str, Any]], dict[str, Any]]:
    """A structlog processor that redacts every string value of each log line.

    Exceptions are rendered to text first (``format_exc_info``) so tracebacks are redacted too;
    put it after ``add_log_level``/``TimeStamper`` and before the renderer.
    """
    redactor = _redactor(source)
    format_exc = structlog.processors.format_exc_info

    def processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if event_dict.get("exc_info"):
            event_dict = dict(format_exc(logger, method_name, event_dict))
        return {k: redactor.redact_value(v) for k, v in event_dict.items()}

    return processor


def _redactor(source: Policy | RunPolicy | Redactor) -> Redactor:
    if isinstance(source, Redactor):
        return source
    redactor = getattr(source, "redactor", None)
    if isinstance(redactor, Redactor):
        return redactor
    return Redactor(source.redaction)  # type: ignore[union-attr]
