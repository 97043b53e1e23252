#!/usr/bin/env bash
# Set up oss-agent on a fresh Debian machine (as root): system packages, a virtual environment,
# the project with its extras. Idempotent: a second run only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker.io bubblewrap debootstrap chromium chromium-headless-shell tmux iproute2 ca-certificates)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi

pip_install() {
  if ! .venv/bin/pip install --disable-pip-version-check "$@" >.venv/pip.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip.log | tail -30
    echo "setup: pip install $* failed (full log: .venv/pip.log)" >&2
    exit 1
  fi
}

# Reinstall only when the project's requirements changed.
stamp=.venv/.oss-agent-installed
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing oss-agent into .venv"
  # torch 2.13.0 is the CPU build on local disk here; a looser pin would fetch a CUDA build.
  pip_install "torch==2.13.0"
  pip_install -e ".[browser,docker,engine,serve,dev]"
  .venv/bin/python -c "import agent, torch, playwright, docker" 
  echo "$want" > "$stamp"
fi
