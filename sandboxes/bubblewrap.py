"""The bubblewrap kind: the interpreter in fresh namespaces, no daemon needed.

Every namespace is unshared (user, pid, net, ipc, uts, cgroup; the network comes back only when
the policy allows it). The root is the project's debootstrap root file system read-only when it
has been built (``agent sandbox build``), else the host's ``/usr`` read-only and nothing else of
the host. ``/tmp`` and ``/mnt/data`` are size-limited tmpfs mounts; ``/run`` is a tmpfs holding
only the interpreter helper. ``--die-with-parent`` and the pid namespace make sure nothing
outlives the sandbox: when bwrap's init goes, the kernel kills every process inside.

Limits without cgroups: the interpreter lowers its own hard rlimits before any user code runs
(address space for memory, process count for pids). ``RLIMIT_NPROC`` counts per user, so a root
host runs each sandbox under its own otherwise unused uid; an unprivileged host counts its own
processes in. CPU share is not limited here (the run's ``python_cpu_seconds`` budget still is).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from agent.errors import SandboxError
from sandboxes.base import INTERPRETER_PATH, Sandbox, SandboxKind, SandboxLimits
from sandboxes.image import helper_copy, rootfs_dir
from sandboxes.local import ProcessTransport
from sandboxes.protocol import Transport

_HELPER = "/run/oss-agent/interpreter.py"
#: Host uids handed to sandboxes when we run as root (one per sandbox, so NPROC is per sandbox).
_UID_BASE, _UID_SPAN = 1_500_000_000, 1 << 24


class BubblewrapSandbox(Sandbox):
    kind = SandboxKind.BUBBLEWRAP

    def __init__(self, limits: SandboxLimits | None = None, *, rootfs: Path | None = None,
                 bwrap: str | None = None) -> None:
        super().__init__(limits)
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"
        found = rootfs if rootfs is not None else rootfs_dir()
        self.rootfs = found if found is not None and (found / "usr/bin/python3").exists() else None
        self.host_uid = _UID_BASE + random.randrange(_UID_SPAN) if os.geteuid() == 0 else None

    def argv(self) -> list[str]:
        lim = self.limits
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", "--hostname", "sandbox", "--uid", "1000", "--gid", "1000"]
        if lim.network:
            args.append("--share-net")
        args += self._root_args()
        size = str(lim.disk_mb * 1_000_000)
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run",
                 "--ro-bind", str(self._helper()), _HELPER,
                 "--size", size, "--tmpfs", "/tmp",
                 "--size", size, "--perms", "0777", "--tmpfs", self.data_dir,
                 "--chdir", "/tmp", "--"]
        python = "/usr/bin/python3"
        rlimits = {"as_bytes": lim.memory_mb * 2**20, "nproc": self._nproc(),
                   "fsize_bytes": lim.disk_mb * 1_000_000, "nofile": 1024}
        return [*args, python, "-I", "-u", _HELPER, lim.interpreter_config(self.data_dir, rlimits)]

    def _helper(self) -> Path:
        # A sandbox uid may not be able to read our checkout: hand it a world-readable copy.
        return helper_copy() if self.host_uid is not None else INTERPRETER_PATH

    def _root_args(self) -> list[str]:
        if self.rootfs is not None:
            return ["--ro-bind", str(self.rootfs), "/"]
        # No built root: only the host's /usr, read-only, with the usual merged-/usr links.
        args = ["--ro-bind", "/usr", "/usr", "--dir", "/etc", "--dir", "/mnt"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64"):
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        return args

    def _nproc(self) -> int:
        if self.host_uid is not None:
            return self.limits.pids
        # An unprivileged host shares its uid with the sandbox: count what already runs.
        uid, count = os.getuid(), 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    count += entry.stat().st_uid == uid
                except OSError:
                    continue
        return count + self.limits.pids

    async def _spawn(self) -> Transport:
        if shutil.which(self.bwrap) is None:
            raise SandboxError("bubblewrap (bwrap) is not installed")
        return await ProcessTransport.spawn(
            self.argv(), env=self.limits.environment(), cwd="/", user=self.host_uid)
