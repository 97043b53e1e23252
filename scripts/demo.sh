#!/usr/bin/env bash
# The main job: set everything up, then run an agent recipe end to end (the research agent: it
# searches, opens a page and answers with clickable citations, from a recorded browse, offline).
# Until a real model ships with the project it runs on the scripted engine and says so; pass
# --engine SPEC (e.g. local:/path/to/checkpoint or http://host:port/v1) for a real one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/agent run recipes/research.py "$@"
