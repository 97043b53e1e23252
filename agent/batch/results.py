"""The results file: one JSON line per finished task, appended so that no crash loses or
duplicates a line.

Each line is written with a single ``os.write`` on an ``O_APPEND`` descriptor, so lines never
interleave and a finished line is in the kernel's page cache (it survives ``kill -9``; ``fsync``
on close covers power loss). The one thing a crash can leave is a torn last line: ``open`` with
``resume=True`` finds it (no newline at the end, or not JSON), cuts it off, and reports the ids
already finished so the runner skips them. The task whose line was torn simply runs again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Self

import structlog

from agent.errors import UserError

log = structlog.get_logger(__name__)


class ResultsFile:
    """Append-only JSONL of task records, keyed by ``id``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.records: dict[str, dict[str, Any]] = {}  # finished before this run (resume)
        self.repaired_bytes = 0

    def open(self, *, resume: bool = False, overwrite: bool = False) -> Self:
        """Open for appending.

        Raises:
            UserError: the file has results and neither ``resume`` nor ``overwrite`` was asked,
                or a line other than the last is not JSON (the file was edited by hand).
        """
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise UserError(f"{self.path} already has results: pass --resume to skip the tasks "
                            "it holds, or --overwrite to start again")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if overwrite:
            flags |= os.O_TRUNC
        elif exists:
            self._repair()
        self._fd = os.open(self.path, flags, 0o644)
        return self

    def _repair(self) -> None:
        data = self.path.read_bytes()
        good = 0  # bytes up to the end of the last complete JSON line
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # tail: bytes after the last newline
        for n, raw in enumerate(complete, 1):
            try:
                record = json.loads(raw) if raw.strip() else None
            except ValueError:
                if n == len(complete) and not tail:
                    break  # a torn last line that happens to end in a newline
                raise UserError(f"{self.path}:{n}: not a JSON line; the results file was "
                                "changed by something else than agent batch") from None
            if record is not None:
                self.records[str(record.get("id"))] = record
            good += len(raw) + 1
        if good < len(data):
            self.repaired_bytes = len(data) - good
            log.warning("results_repaired", path=str(self.path), torn_bytes=self.repaired_bytes)
            os.truncate(self.path, good)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line, whole."""
        assert self._fd is not None, "open() the results file first"
        data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        view = memoryview(data)
        while view:  # a regular file takes it in one write; loop for the rare partial write
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a results file (a torn last line is ignored)."""
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out
