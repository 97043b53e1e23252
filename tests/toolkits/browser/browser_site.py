"""A loopback test site for the browser, plus a SearXNG-style JSON search endpoint.

Started by tests in a thread (``with serve_site() as base``); nothing leaves 127.0.0.1. Pages:
linked pages, a long page, unicode, tables, a page built by JavaScript, redirects (plain, to a
private address, to file://, endless), a slow page, a slow-loris drip, a huge page, binary data,
a PDF.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

INDEX = """<!doctype html><html><head><title>Test Index</title></head><body>
<h1>Loopback test site</h1>
<p>Welcome to the <b>test site</b>. Read <a href="/a">Page A</a> or <a href="/long">the long page</a>.</p>
<ul><li><a href="/unicode">Unicode page</a></li><li><a href="/table">A table</a></li>
<li><a href="/js">JavaScript page</a></li><li><a href="https://example.org/about">External site</a></li></ul>
</body></html>"""

PAGE_A = """<html><head><title>Page A</title></head><body>
<h2>About page A</h2><p>Page A talks about apples and avocados.</p>
<p>Go <a href="/">home</a>.</p></body></html>"""

UNICODE = """<html><head><meta charset="utf-8"><title>Ünïcödé</title></head><body>
<p>Grüße aus Köln — 日本語のテキスト — emoji 🎉 — brackets 【not a link】.</p></body></html>"""

TABLE = """<html><head><title>Fruit table</title></head><body><table>
<tr><th>Fruit</th><th>Colour</th><th>Price</th></tr>
<tr><td>Apple</td><td>Red</td><td>1.20</td></tr>
<tr><td>Banana</td><td>Yellow</td><td>0.50</td></tr></table></body></html>"""

JS = """<html><head><title>JS page</title></head><body><div id="root">Loading...</div>
<script>document.getElementById('root').innerHTML =
  '<p>Built by JavaScript: the secret word is marmalade.</p>';</script></body></html>"""

LATE = """<html><head><title>Late page</title></head><body><p id="out">waiting</p>
<script>window.addEventListener('load', () => fetch('/slow?s=0.3').then(r => r.text())
  .then(t => { document.getElementById('out').textContent = 'fetched after load: ' + t; }));
</script></body></html>"""


def long_page(n: int = 300) -> str:
    paras = "".join(
        f"<p>Paragraph {i}: the quick brown fox jumps over the lazy dog number {i}.</p>"
        for i in range(n)
    )
    return f"<html><head><title>Long page</title></head><body><h1>Long</h1>{paras}</body></html>"


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (built by hand: no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (40 ms on Linux) on every keep-alive request. Real servers don't.
    disable_nagle_algorithm = True
    pages: dict[str, tuple[str, bytes]] = {}
    flaky_hits: dict[str, int] = {}  # /flaky requests per key (the site runs in one thread per request)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, ctype: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, "text/plain", b"moved", {"Location": location})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        target = self._redirect_target(path)
        if path in self.pages:
            ctype, body = self.pages[path]
            self._send(200, ctype, body)
        elif target is not None:
            self._redirect(target)
        elif path in _DYNAMIC:
            getattr(self, _DYNAMIC[path])(query)
        else:
            self._send(404, "text/html", b"<html><body>not found</body></html>")

    def _port(self) -> int:
        address = self.server.server_address
        assert isinstance(address, tuple)
        return int(address[1])

    def _redirect_target(self, path: str) -> str | None:
        if path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            return f"/chain/{n - 1}" if n > 0 else "/a"
        if path == "/to-private":
            return f"http://127.0.0.2:{self._port()}/a"
        return _REDIRECTS.get(path)

    def _slow(self, query: dict[str, list[str]]) -> None:
        time.sleep(float(query.get("s", ["3"])[0]))
        self._send(200, "text/html", b"<html><body><p>finally</p></body></html>")

    def _slowloris(self, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(150):  # 30 s at most, one byte every 0.2 s
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)

    def _leaky(self, query: dict[str, list[str]]) -> None:
        """Sub-requests to refused addresses; ?probe=PORT on 127.0.0.2."""
        probe = query.get("probe", ["9"])[0]
        body = (
            "<html><head><title>Leaky</title><script src='/app.js'></script></head><body>"
            f"<img src='http://127.0.0.2:{probe}/pixel.png' alt='probe'>"
            f"<script>fetch('http://127.0.0.2:{probe}/xhr').catch(() => {{}});"
            "fetch('http://10.0.0.1/x').catch(() => {});</script>"
            "<p id='out'>static text</p></body></html>"
        )
        self._send(200, "text/html", body.encode())

    def _flaky(self, query: dict[str, list[str]]) -> None:
        """``?key=K&fail=N[&status=S][&wait=W]``: status S (503) for the first N requests of K."""
        key = query.get("key", [""])[0]
        self.flaky_hits[key] = self.flaky_hits.get(key, 0) + 1
        if self.flaky_hits[key] <= int(query.get("fail", ["1"])[0]):
            extra = {"Retry-After": query["wait"][0]} if "wait" in query else None
            self._send(int(query.get("status", ["503"])[0]), "text/html", b"busy", extra)
        else:
            self._send(200, "text/html", b"<html><body><p>made it</p></body></html>")

    def _search(self, query: dict[str, list[str]]) -> None:
        """A SearXNG-style JSON search answering every query with two pages of the site."""
        q = query.get("q", [""])[0]
        site = f"http://127.0.0.1:{self._port()}"
        results = [
            {"url": f"{site}/a", "title": f"Page A for {q}", "content": "About apples."},
            {"url": f"{site}/long", "title": "Long page", "content": "Many lines."},
        ]
        self._send(200, "application/json", json.dumps({"query": q, "results": results}).encode())


_REDIRECTS = {
    "/redirect": "/a", "/loop": "/loop", "/to-ten": "http://10.0.0.1/secret",
    "/to-file": "file:///etc/passwd",
}
_DYNAMIC = {"/slow": "_slow", "/slowloris": "_slowloris", "/leaky": "_leaky", "/search": "_search",
            "/flaky": "_flaky"}
APP_JS = (
    b"document.addEventListener('DOMContentLoaded', () => {"
    b"document.getElementById('out').textContent += ' plus script text'; });"
)


def site_pages() -> dict[str, tuple[str, bytes]]:
    html = "text/html; charset=utf-8"
    return {
        "/": (html, INDEX.encode()),
        "/a": (html, PAGE_A.encode()),
        "/long": (html, long_page().encode()),
        "/unicode": ("text/html", UNICODE.encode()),  # charset from <meta> only
        "/table": (html, TABLE.encode()),
        "/js": (html, JS.encode()),
        "/late": (html, LATE.encode()),
        "/app.js": ("application/javascript", APP_JS),
        "/huge": (html, b"<html><body><p>" + b"big " * 800_000 + b"</p></body></html>"),
        "/bin": ("application/octet-stream", bytes(range(256)) * 64),
        "/doc.pdf": ("application/pdf", minimal_pdf("Hello from a PDF document")),
        "/notes.txt": ("text/plain; charset=utf-8", b"plain text notes\nsecond line\n"),
    }


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up on purpose (timeouts, size limits) are expected here


@contextlib.contextmanager
def serve_site() -> Iterator[str]:
    """Serve the site on 127.0.0.1 (a free port); yields its base URL without trailing slash."""
    handler = type("SiteHandler", (_Handler,), {"pages": site_pages()})
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
