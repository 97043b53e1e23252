"""Building what sandboxes run on, without any registry.

Two artefacts, both cached (``$OSS_AGENT_CACHE``, else ``/var/cache/oss-agent`` for root so
unprivileged sandbox uids can read it, else ``~/.cache/oss-agent``):

- a Debian root file system from ``debootstrap --variant=minbase --include=python3`` (used
  read-only by bubblewrap, and the base of the Docker image), plus its tarball;
- the Docker image ``oss-agent-sandbox:latest``: the tarball ``docker import``-ed as
  ``oss-agent-sandbox-base:bookworm``, then a one-layer build adding the interpreter helper.
  Where a normal image exists locally (or ``pull=True`` may fetch it), ``base=`` uses it instead.

Everything is a no-op when already there; the image is rebuilt when the helper's hash changed.
These functions block (they shell out): call them from a thread in async code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from agent.errors import SandboxError, UserError

log = structlog.get_logger(__name__)

IMAGE = "oss-agent-sandbox:latest"
BASE_IMAGE = "oss-agent-sandbox-base:bookworm"
SUITE = "bookworm"
HELPER_LABEL = "oss-agent.interpreter"
_SANDBOX_USER = "sandbox:x:1000:1000:sandbox:/tmp:/usr/sbin/nologin\n"


def cache_dir() -> Path:
    if env := os.environ.get("OSS_AGENT_CACHE"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/oss-agent")
    return Path.home() / ".cache" / "oss-agent"


def rootfs_dir() -> Path | None:
    """The built root file system, or None when ``agent sandbox build`` has not run."""
    path = cache_dir() / f"rootfs-{SUITE}"
    return path if (path / "usr/bin/python3").exists() else None


def helper_digest() -> str:
    from sandboxes.base import INTERPRETER_PATH

    return hashlib.sha256(INTERPRETER_PATH.read_bytes()).hexdigest()[:16]


def debian_mirror() -> str:
    """The Debian mirror apt uses here (debootstrap must go through the same one)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for url in re.findall(r"(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text):
            if url.rstrip("/").endswith("/debian"):
                return url
    return "http://deb.debian.org/debian"


def build_rootfs(*, force: bool = False) -> Path:
    """debootstrap the root file system once. Raises UserError without root or debootstrap."""
    found = rootfs_dir()
    if found is not None and not force:
        return found
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise UserError("building the sandbox root needs root and debootstrap "
                        "(apt-get install debootstrap)")
    target = cache_dir() / f"rootfs-{SUITE}"
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log.info("sandbox.debootstrap", target=str(target), mirror=debian_mirror())
    subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3", SUITE, str(tmp),
         debian_mirror()], check=True, capture_output=True)
    _finish_rootfs(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (cache_dir() / f"rootfs-{SUITE}.tar").unlink(missing_ok=True)
    return target


def _finish_rootfs(root: Path) -> None:
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (root / junk).glob("*"):
            if path.is_file():
                path.unlink()
    passwd = root / "etc/passwd"
    if "sandbox:" not in passwd.read_text():
        with passwd.open("a") as f:
            f.write(_SANDBOX_USER)
    (root / "mnt/data").mkdir(parents=True, exist_ok=True)
    (root / "opt/oss-agent").mkdir(parents=True, exist_ok=True)


def rootfs_tarball() -> Path:
    root = build_rootfs()
    tar = cache_dir() / f"rootfs-{SUITE}.tar"
    if not tar.exists():
        _finish_rootfs(root)
        partial = tar.with_suffix(".tar.tmp")
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                       check=True, capture_output=True)
        partial.rename(tar)
    return tar


def image_ready(client: Any, tag: str = IMAGE) -> bool:
    import docker.errors

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return bool((image.labels or {}).get(HELPER_LABEL) == helper_digest())


def build_image(client: Any = None, *, tag: str = IMAGE, base: str | None = None,
                pull: bool = False, force: bool = False) -> str:
    """Make ``tag`` exist with the current helper; returns the tag. Raises SandboxError."""
    import docker
    import docker.errors

    client = client or docker.from_env()
    if not force and image_ready(client, tag):
        return tag
    with _build_lock():
        if not force and image_ready(client, tag):  # another process built it meanwhile
            return tag
        return _build(client, tag, base, pull)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    import fcntl

    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(client: Any, tag: str, base: str | None, pull: bool) -> str:
    import docker.errors

    try:
        base = base or _import_base(client)
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            if not pull:
                raise UserError(
                    f"base image {base} is not here; pass pull=True to fetch it") from None
            client.images.pull(base)
        client.images.build(fileobj=_context(base), custom_context=True, tag=tag, rm=True,
                            labels={HELPER_LABEL: helper_digest(), "oss-agent": "1"})
    except (docker.errors.DockerException, subprocess.CalledProcessError) as exc:
        raise SandboxError(f"cannot build {tag}: {exc}") from exc
    log.info("sandbox.image_built", tag=tag, base=base)
    return tag


def _import_base(client: Any) -> str:
    import docker.errors

    try:
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    repo, tag = BASE_IMAGE.split(":")
    client.api.import_image_from_file(str(rootfs_tarball()), repository=repo, tag=tag)
    return BASE_IMAGE


def _context(base: str) -> io.BytesIO:
    from sandboxes.base import INTERPRETER_IN_SANDBOX, INTERPRETER_PATH

    dockerfile = (
        f"FROM {base}\n"
        f"COPY interpreter.py {INTERPRETER_IN_SANDBOX}\n"
        "USER 1000:1000\nWORKDIR /tmp\n"
        f'CMD ["python3", "-I", "-u", "{INTERPRETER_IN_SANDBOX}"]\n'
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()),
                           ("interpreter.py", INTERPRETER_PATH.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def helper_copy() -> Path:
    """A world-readable copy of the helper, for sandboxes running under another uid."""
    from sandboxes.base import INTERPRETER_PATH

    path = cache_dir() / f"interpreter-{helper_digest()}.py"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(INTERPRETER_PATH, tmp)
        tmp.chmod(0o644)
        tmp.rename(path)
    return path
