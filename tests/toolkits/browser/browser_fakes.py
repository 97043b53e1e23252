"""Loopback fakes of the You.com and Exa APIs, speaking their wire formats.

They check what the real services check (API key header, paths, JSON fields) and record every
request, so tests can assert what our client (httpx for You.com, the real ``exa-py`` client for
Exa) actually sent. ``fail_first`` answers that many requests with 429 to exercise retries.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "test-key-123"


@dataclass
class FakeState:
    site: str  # base URL of the loopback site the results point at
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0
    retry_after: str | None = None  # sent with the 429s as Retry-After


PAGE_HTML = "<html><body><h1>Fetched via API</h1><p>Apples are red. See <a href='/a'>A</a>.</p></body></html>"


def _youcom(state: FakeState, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    if method == "GET" and path == "/v1/search":
        q = query["query"][0]
        count = int(query.get("count", ["10"])[0])
        web = [
            {"url": f"{state.site}/a", "title": f"Apples: {q}", "description": "All about apples.",
             "snippets": ["Apples are red.", "Some are green."]},
            {"url": f"{state.site}/long", "title": "Long read", "description": "Many lines.",
             "snippets": ["A very long page."]},
        ][:count]
        news = [{"url": f"{state.site}/unicode", "title": "News: Köln", "description": "Fresh news.",
                 "age": "2 hours ago"}]
        return 200, {"results": {"web": web, "news": news}, "metadata": {"query": q, "search_uuid": "u-1"}}
    if method == "POST" and path == "/v1/contents":
        if not isinstance(body, dict) or not isinstance(body.get("urls"), list):
            return 400, {"detail": "urls required"}
        return 200, [{"url": u, "title": "Fetched title", "html": PAGE_HTML} for u in body["urls"]]
    return 404, {"detail": "not found"}


def _exa(state: FakeState, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    if method == "POST" and path == "/search":
        n = int(body.get("numResults", 10))
        results = [
            {"id": f"{state.site}/a", "url": f"{state.site}/a", "title": "Exa apples", "score": 0.9,
             "publishedDate": None, "author": None, "text": "Apples text", "summary": "Apples summary."},
            {"id": f"{state.site}/table", "url": f"{state.site}/table", "title": "Exa table", "score": 0.8,
             "publishedDate": None, "author": None, "text": "Table text", "summary": "A table."},
        ][:n]
        return 200, {"requestId": "r-1", "resolvedSearchType": "neural", "results": results}
    if method == "POST" and path == "/contents":
        urls = body.get("urls") or body.get("ids") or []
        results = [{"id": u, "url": u, "title": "Exa page", "text": PAGE_HTML} for u in urls]
        statuses = [{"id": u, "status": "success"} for u in urls]
        return 200, {"requestId": "r-2", "results": results, "statuses": statuses}
    return 404, {"error": "not found"}


def _handler(state: FakeState, api: str) -> type[BaseHTTPRequestHandler]:
    route = _youcom if api == "youcom" else _exa
    key_header = "X-API-Key" if api == "youcom" else "x-api-key"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            state.requests.append({
                "method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                "headers": dict(self.headers), "body": body,
            })
            if self.headers.get(key_header) != API_KEY:
                status, payload = 401, {"error": "invalid api key"}
            elif state.fail_first > 0:
                state.fail_first -= 1
                status, payload = 429, {"error": "rate limited"}
            else:
                status, payload = route(state, self.command, parts.path, parse_qs(parts.query), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            if status == 429 and state.retry_after is not None:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

    return Handler


@contextlib.contextmanager
def serve_api(api: str, site: str) -> Iterator[tuple[str, FakeState]]:
    """Serve the fake ``api`` ("youcom" or "exa") on 127.0.0.1; yields (base URL, state)."""
    state = FakeState(site=site)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
