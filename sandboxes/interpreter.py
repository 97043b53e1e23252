"""The persistent interpreter that runs INSIDE a sandbox (stdlib only, Python >= 3.8).

It keeps one globals dict for the whole run, so variables, imports and definitions survive between
calls, the way the stateful notebook gpt-oss was trained on behaves. The host speaks to it over
the process's stdin/stdout with length-prefixed JSON frames (4-byte big-endian length, then UTF-8
JSON): cheap enough for a sub-millisecond round trip, and independent of the sandbox kind.

Requests (host -> here)::

    {"op": "exec", "code": "...", "timeout": 120.0}
    {"op": "put", "path": "rel/path", "data": "<base64>"}     # a user file into the data dir
    {"op": "ping"}

Every request gets exactly one reply; the first frame written is ``{"op": "ready", ...}``.

The protocol pipes are moved off fds 0/1 at start-up (and are close-on-exec), and fds 1/2 become
pipes drained by threads, so output of user code -- including ``os.write(1, ...)`` and child
processes -- is captured and capped instead of corrupting the protocol or filling memory.

A call is bounded with SIGALRM: the alarm raises inside user code, the call answers with what it
printed so far, and the globals survive. Code that ignores the alarm (a C loop, ``except
BaseException``) is the host's problem: it kills and restarts this process.
"""

from __future__ import annotations

import ast
import base64
import json
import linecache
import os
import resource
import signal
import stat
import struct
import sys
import threading
import time
import traceback

_HEADER = struct.Struct(">I")


class CellTimeout(BaseException):
    """Raised inside user code when its time is up (a BaseException: ``except Exception`` in
    user code must not swallow it)."""


class _Capture:
    """Drains one pipe in a thread and keeps at most ``cap`` bytes of it; counts the rest."""

    def __init__(self, read_fd: int, cap: int) -> None:
        self.fd = read_fd
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0
        self.lock = threading.Lock()
        os.set_blocking(read_fd, False)
        threading.Thread(target=self._pump, daemon=True).start()

    def _read_available(self) -> None:
        # Callers hold the lock, so the pump and take() never interleave partial reads.
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            room = self.cap - len(self.buf)
            if room > 0:
                self.buf += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))

    def _pump(self) -> None:
        import select

        while True:
            select.select([self.fd], [], [])
            with self.lock:
                self._read_available()

    def take(self) -> tuple[str, int]:
        with self.lock:
            self._read_available()
            data, dropped = bytes(self.buf), self.dropped
            self.buf.clear()
            self.dropped = 0
        return data.decode("utf-8", "replace"), dropped


class Interpreter:
    def __init__(self, config: dict) -> None:
        self.data_dir = config.get("data_dir", "/mnt/data")
        self.max_file_bytes = int(config.get("max_file_bytes", 50_000_000))
        self.proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
        self.proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        self.cap = cap = int(config.get("output_bytes", 20_000))
        self.out = self._redirect(1, cap)
        self.err = self._redirect(2, cap)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives forever
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False,  # noqa: SIM115
                          buffering=1)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False,  # noqa: SIM115
                          buffering=1)
        self.pid = os.getpid()
        self.globals: dict = {"__name__": "__main__", "__builtins__": __builtins__}
        self.cell = 0
        self.in_cell = False
        self.snapshot: dict[str, tuple[int, int]] = {}
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGINT, self._on_alarm)
        os.makedirs(self.data_dir, exist_ok=True)
        os.chdir(self.data_dir)
        self.snapshot = self._scan()

    @staticmethod
    def _redirect(fd: int, cap: int) -> _Capture:
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, fd)
        os.close(write_fd)
        return _Capture(read_fd, cap)

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self.in_cell:
            raise CellTimeout()

    # -- protocol ------------------------------------------------------------------------------

    def read_frame(self) -> dict | None:
        header = self._read_exact(_HEADER.size)
        if header is None:
            return None
        body = self._read_exact(_HEADER.unpack(header)[0])
        return None if body is None else json.loads(body)

    def _read_exact(self, n: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self.proto_in.read(n - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def write_frame(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.proto_out.write(_HEADER.pack(len(body)) + body)

    def serve(self) -> None:
        self.write_frame({"op": "ready", "pid": os.getpid(), "python": sys.version.split()[0]})
        while True:
            request = self.read_frame()
            if request is None:  # the host went away: nothing left to serve
                return
            op = request.get("op")
            if op == "exec":
                reply = self.execute(request["code"], float(request.get("timeout") or 0))
            elif op == "put":
                reply = self.put(request["path"], request["data"])
            else:
                reply = {"op": "pong"}
            self.write_frame(reply)

    # -- execution -----------------------------------------------------------------------------

    def execute(self, code: str, timeout: float) -> dict:
        self.cell += 1
        filename = f"<cell-{self.cell}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        value, error, timed_out = None, None, False
        started, cpu0 = time.monotonic(), _cpu_seconds()
        try:
            body, last = self._compile(code, filename)
            self.in_cell = True
            if timeout > 0:
                signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                if body is not None:
                    exec(body, self.globals)
                if last is not None:
                    result = eval(last, self.globals)
                    if result is not None:
                        self.globals["_"] = result
                        value = repr(result)[: self.cap + 1]
            finally:
                self.in_cell = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except CellTimeout as exc:
            timed_out = True
            error = self._format_timeout(exc, timeout)
        except SyntaxError as exc:
            error = "".join(traceback.format_exception_only(type(exc), exc))
        except BaseException as exc:  # noqa: BLE001 - user code may raise anything, SystemExit too
            error = self._format_error(exc)
        if os.getpid() != self.pid:
            os._exit(0)  # a child forked by the cell finished it: only the parent serves
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        stdout, stdout_dropped = self.out.take()
        stderr, stderr_dropped = self.err.take()
        files, deleted = self._changed_files()
        return {
            "op": "result", "stdout": stdout, "stderr": stderr,
            "stdout_dropped": stdout_dropped, "stderr_dropped": stderr_dropped,
            "value": value, "error": error, "timed_out": timed_out,
            "wall_s": time.monotonic() - started, "cpu_s": _cpu_seconds() - cpu0,
            "files": files, "deleted": deleted,
        }

    @staticmethod
    def _compile(code: str, filename: str) -> tuple[object, object]:
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = compile(ast.Expression(tree.body.pop().value), filename, "eval")
        body = compile(tree, filename, "exec") if tree.body else None
        return body, last

    @staticmethod
    def _format_error(exc: BaseException) -> str:
        tb = exc.__traceback__
        # Drop this file's frames so the traceback starts in the user's cell.
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        return "".join(traceback.format_exception(type(exc), exc, tb))

    @staticmethod
    def _format_timeout(exc: BaseException, timeout: float) -> str:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
        head = "Traceback (most recent call last):\n" if frames else ""
        return (head + "".join(traceback.format_list(frames))
                + f"TimeoutError: execution timed out after {timeout:g} seconds\n")

    # -- files ---------------------------------------------------------------------------------

    def put(self, rel: str, data: str) -> dict:
        path = os.path.normpath(os.path.join(self.data_dir, rel))
        if not path.startswith(self.data_dir.rstrip("/") + "/"):
            return {"op": "put", "ok": False, "error": "path escapes the data dir"}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        st = os.stat(path)
        self.snapshot[rel] = (st.st_size, st.st_mtime_ns)
        return {"op": "put", "ok": True}

    def _scan(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for root, _dirs, names in os.walk(self.data_dir):
            for name in names:
                full = os.path.join(root, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found[os.path.relpath(full, self.data_dir)] = (st.st_size, st.st_mtime_ns)
        return found

    def _changed_files(self) -> tuple[list[dict], list[str]]:
        now = self._scan()
        files = []
        for rel, sig in now.items():
            if self.snapshot.get(rel) == sig:
                continue
            entry: dict = {"path": rel, "size": sig[0]}
            if sig[0] <= self.max_file_bytes:
                try:
                    fd = os.open(os.path.join(self.data_dir, rel), os.O_RDONLY | os.O_NOFOLLOW)
                    with os.fdopen(fd, "rb") as f:
                        entry["data"] = base64.b64encode(f.read(self.max_file_bytes)).decode()
                except OSError:
                    continue
            files.append(entry)
        deleted = [rel for rel in self.snapshot if rel not in now]
        self.snapshot = now
        return files, deleted


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _apply_limits(limits: dict) -> None:
    """Lower soft AND hard limits, so user code cannot raise them again."""
    table = {"nproc": resource.RLIMIT_NPROC, "as_bytes": resource.RLIMIT_AS,
             "fsize_bytes": resource.RLIMIT_FSIZE, "nofile": resource.RLIMIT_NOFILE}
    for key, which in table.items():
        value = limits.get(key)
        if value:
            try:
                resource.setrlimit(which, (int(value), int(value)))
            except (ValueError, OSError) as exc:
                os.write(2, f"interpreter: cannot set {key}: {exc}\n".encode())


def main() -> None:
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    _apply_limits(config.get("limits") or {})
    Interpreter(config).serve()


if __name__ == "__main__":
    main()
