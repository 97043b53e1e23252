#!/usr/bin/env bash
# Make sure a Docker engine answers and the python sandbox image exists. Idempotent.
#   - starts dockerd detached when none answers (needs root; logs to /var/log/dockerd.log)
#   - builds oss-agent-sandbox:latest without a registry (debootstrap + docker import)
# Usage: scripts/ensure-docker.sh [--no-build]
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

if ! docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null; then
        echo "ensure-docker: dockerd is not installed (apt-get install docker.io)" >&2
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "ensure-docker: starting dockerd" >&2
    $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "ensure-docker: dockerd did not come up; see /var/log/dockerd.log" >&2; exit 1; }
fi

if [ "${1:-}" != "--no-build" ]; then
    "$PY" -c 'from sandboxes.image import build_image, build_rootfs; build_rootfs(); print(build_image())'
fi
