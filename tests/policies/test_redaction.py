"""Redaction: env var values and key patterns out of tool output, events and log lines."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from policies import Policy, RedactionPolicy, Redactor, RunPolicy, redaction_processor

SECRET = "s3cr3t-value-0123456789"


def test_env_var_values_are_replaced_by_name_glob() -> None:
    env = {"MY_SERVICE_API_KEY": SECRET, "HOME": "/root", "SHORT_TOKEN": "abc"}
    r = Redactor(RedactionPolicy(), environ=env)
    assert r.redact(f"key={SECRET}; home=/root") == "key=[REDACTED]; home=/root"
    assert r.redact("abc") == "abc"  # too short to hide without hiding ordinary words


@pytest.mark.parametrize(
    "token",
    [
        "sk-proj-abcdefghijklmnopqrstuv", "ghp_" + "a1" * 12, "github_pat_" + "x" * 30,
        "hf_" + "Ab" * 12, "xoxb-1234567890-abcdef", "AKIAABCDEFGHIJKLMNOP",
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_default_patterns_catch_common_keys(token: str) -> None:
    out = Redactor(RedactionPolicy(), environ={}).redact(f"before {token} after")
    assert out == "before [REDACTED] after"


def test_custom_patterns_replacement_and_nested_values() -> None:
    r = Redactor(RedactionPolicy(env_vars=[], patterns=[r"acct-\d+"], replacement="***"), {})
    value = {"a": ["acct-123", ("x", "acct-9")], "n": 3, "s": "ok"}
    assert r.redact_value(value) == {"a": ["***", ("x", "***")], "n": 3, "s": "ok"}


def test_run_policy_redacts_tool_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXA_API_KEY", SECRET)
    rp = RunPolicy(Policy())
    assert SECRET not in rp.redact(f"the page said {SECRET}")


def test_redaction_processor_cleans_log_lines_and_tracebacks(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = io.StringIO()
    saved = structlog.get_config()
    structlog.configure(
        processors=[redaction_processor(Policy()), structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    try:
        log = structlog.get_logger("t")
        log.info("calling", header=f"Bearer {SECRET}", nested={"k": [SECRET]})
        try:
            raise RuntimeError(f"failed with {SECRET}")
        except RuntimeError:
            log.exception("boom")
    finally:
        structlog.configure(**saved)
    text = out.getvalue()
    assert SECRET not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["nested"] == {"k": ["[REDACTED]"]}
    assert "RuntimeError: failed with [REDACTED]" in second["exception"]


def test_processor_accepts_a_run_policy_or_a_redactor() -> None:
    rp = RunPolicy(Policy(redaction=RedactionPolicy(env_vars=[], patterns=["zzz+"])))
    for source in (rp, rp.redactor):
        assert redaction_processor(source)(None, "info", {"event": "a zzzz"}) == {
            "event": "a [REDACTED]"
        }


def test_events_are_redacted_field_by_field() -> None:
    from agent.events import Outcome, ToolCallRecord, ToolFinished
    from toolkits.base import ToolCall

    r = Redactor(RedactionPolicy(env_vars=[], patterns=["tok-[0-9]+"]), environ={})
    record = ToolCallRecord(ToolCall("python", "python", None, "print('tok-1')"), Outcome.OK,
                            "tok-22", 0.0, 0.1, {"k": "tok-3"})
    event = r.redact_value(ToolFinished(record))
    assert isinstance(event, ToolFinished)
    assert event.record.output == "[REDACTED]" and event.record.metadata == {"k": "[REDACTED]"}
    assert event.record.call.arguments == "print('[REDACTED]')"
    clean = ToolFinished(ToolCallRecord(ToolCall("python", "python", None, "x"), Outcome.OK,
                                        "fine", 0.0, 0.1))
    assert r.redact_value(clean) is clean
