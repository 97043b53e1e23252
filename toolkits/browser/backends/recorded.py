"""Record every backend answer of a run to a JSONL file, and replay such a file offline.

A recording holds one JSON object per line: ``{"op": "search"|"fetch", "key": ..., "page":
{...}}`` or ``{..., "error": "..."}``. Replaying serves the answers by ``(op, key)`` in the
order they were recorded, so a browsing recipe reruns deterministically with no network and no
API keys. Policy checks still run on replay (a URL the policy refuses now is refused).
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import anyio

from agent.errors import ToolError, UserError
from policies.config import BrowserPolicy
from policies.network import check_url
from toolkits.browser.backends.base import (
    VIEW_SOURCE_PREFIX,
    Backend,
    BackendError,
    BackendSession,
)
from toolkits.browser.page import PageContents


class RecordingSession(BackendSession):
    def __init__(self, inner: BackendSession, path: Path, kind: str) -> None:
        self._inner = inner
        self._path = path
        self._kind = kind
        self._lock = anyio.Lock()

    async def _write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        async with self._lock:
            await anyio.to_thread.run_sync(self._append, line)

    def _append(self, line: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as f:
            f.write(line)

    async def _record(self, op: str, key: str, call: Any) -> PageContents:
        entry: dict[str, Any] = {"op": op, "key": key, "backend": self._kind}
        try:
            page: PageContents = await call
        except ToolError as exc:
            await self._write({**entry, "error": exc.message})
            raise
        await self._write({**entry, "page": page.to_json()})
        return page

    async def search(self, query: str, topn: int) -> PageContents:
        return await self._record("search", query, self._inner.search(query, topn))

    async def fetch(self, url: str) -> PageContents:
        return await self._record("fetch", url, self._inner.fetch(url))

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingBackend(Backend):
    """Wraps a backend; each run appends to ``path`` (``{run_id}`` in it is replaced)."""

    def __init__(self, inner: Backend, path: Path, kind: str) -> None:
        self.inner = inner
        self._path = str(path)
        self._kind = kind

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def session(self, policy: BrowserPolicy, run_id: str = "") -> RecordingSession:
        path = Path(self._path.replace("{run_id}", run_id or "run"))
        return RecordingSession(self.inner.session(policy, run_id=run_id), path, self._kind)


def load_recording(path: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    answers: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    if not path.is_file():
        raise UserError(f"browser recording {path} does not exist; record one with record_to")
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                answers[(entry["op"], entry["key"])].append(entry)
    return answers


class ReplaySession(BackendSession):
    def __init__(self, answers: dict[tuple[str, str], list[dict[str, Any]]], policy: BrowserPolicy):
        # each run replays from the start of the recording
        self._answers = {k: deque(v) for k, v in answers.items()}
        self._policy = policy

    def _next(self, op: str, key: str) -> PageContents:
        queue = self._answers.get((op, key))
        if not queue:
            raise BackendError(f"no recorded answer for {op} {key!r} in this recording")
        entry = queue.popleft() if len(queue) > 1 else queue[0]  # the last answer repeats
        if "error" in entry:
            raise BackendError(entry["error"])
        return PageContents.from_json(entry["page"])

    async def search(self, query: str, topn: int) -> PageContents:
        return self._next("search", query)

    async def fetch(self, url: str) -> PageContents:
        check_url(url.removeprefix(VIEW_SOURCE_PREFIX), self._policy)
        return self._next("fetch", url)


class ReplayBackend(Backend):
    """Serves a recording made with ``record_to``; no network at all."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._answers: dict[tuple[str, str], list[dict[str, Any]]] | None = None

    def session(self, policy: BrowserPolicy, run_id: str = "") -> ReplaySession:
        if self._answers is None:
            self._answers = load_recording(self._path)
        return ReplaySession(self._answers, policy)
