#!/usr/bin/env bash
# Set up everything the tests need (system packages, venv, Docker engine, sandbox image) and run
# the whole suite. Missing real components (Docker, bubblewrap, Chromium) fail tests here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/ensure-docker.sh ]; then
  bash scripts/ensure-docker.sh
fi
export OSS_AGENT_REQUIRE_COMPONENTS=1
exec .venv/bin/python -m pytest -n 2 -q "$@"
