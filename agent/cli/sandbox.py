"""``agent sandbox build|ls|clean``: the python sandboxes' image, root file system and leftovers."""

from __future__ import annotations

import argparse
import shutil
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.errors import SandboxError


def register(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="build, list and clean the python sandboxes",
                       description="Manage what the python tool runs in.")
    actions = p.add_subparsers(dest="sandbox_command", metavar="ACTION")

    build = actions.add_parser(
        "build", help="build the root file system and the Docker image (no registry needed)",
        description="debootstrap a Debian root (cached), import it into Docker and add the "
        "interpreter helper. A no-op when everything is current.")
    build.add_argument("--base", help="build FROM this image instead (must exist locally, or "
                       "pass --pull)")
    build.add_argument("--pull", action="store_true", help="allow pulling --base from a registry")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--no-docker", action="store_true",
                       help="only the root file system (enough for bubblewrap)")
    build.set_defaults(handler=_build)

    ls = actions.add_parser("ls", help="list sandbox containers, images and the root")
    ls.set_defaults(handler=_ls)

    clean = actions.add_parser("clean", help="remove leftover sandbox containers")
    clean.add_argument("--all", action="store_true",
                       help="also containers of live processes (stops running sandboxes)")
    clean.add_argument("--images", action="store_true", help="also remove the images")
    clean.add_argument("--rootfs", action="store_true",
                       help="also delete the cached root file system")
    clean.set_defaults(handler=_clean)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _docker() -> Any | None:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - no engine is a normal state for this command
        return None


def _build(args: argparse.Namespace) -> int:
    from sandboxes.image import build_image, build_rootfs, image_ready

    console = Console(highlight=False)
    if args.base is None:
        console.out(f"root file system: {build_rootfs(force=args.force)}")
    if args.no_docker:
        return 0
    client = _docker()
    if client is None:
        raise SandboxError("no Docker engine answers (start dockerd or use --no-docker)")
    fresh = args.force or not image_ready(client)
    tag = build_image(client, base=args.base, pull=args.pull, force=args.force)
    console.out(f"image: {tag} ({'built' if fresh else 'up to date'})")
    return 0


def _ls(args: argparse.Namespace) -> int:
    from sandboxes.base import LABEL
    from sandboxes.image import BASE_IMAGE, IMAGE, image_ready, rootfs_dir

    console = Console(highlight=False)
    root = rootfs_dir()
    console.out(f"root file system: {root or '(not built)'}")
    console.out(f"bubblewrap: {shutil.which('bwrap') or '(not installed)'}")
    client = _docker()
    if client is None:
        console.out("docker: (no engine)")
        return 0
    for tag in (IMAGE, BASE_IMAGE):
        present = bool(client.images.list(name=tag))
        note = "current" if tag == IMAGE and image_ready(client) else (
            "present" if present else "missing")
        console.out(f"image {tag}: {note}")
    table = Table(title="sandbox containers", title_justify="left")
    for column in ("id", "status", "created", "owner"):
        table.add_column(column)
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        table.add_row(c.short_id, c.status, c.attrs.get("Created", "")[:19],
                      c.labels.get("oss-agent.owner", ""))
    console.print(table)
    return 0


def _clean(args: argparse.Namespace) -> int:
    from sandboxes.docker import sweep
    from sandboxes.image import BASE_IMAGE, IMAGE, cache_dir

    console = Console(highlight=False)
    client = _docker()
    if client is not None:
        removed = sweep(client, everything=args.all)
        console.out(f"removed {len(removed)} container(s)")
        if args.images:
            for tag in (IMAGE, BASE_IMAGE):
                if client.images.list(name=tag):
                    client.images.remove(tag, force=True)
                    console.out(f"removed image {tag}")
    if args.rootfs:
        for path in cache_dir().glob("rootfs-*"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            console.out(f"removed {path}")
    return 0
