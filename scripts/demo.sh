#!/usr/bin/env bash
# The main job: set everything up, then run an agent recipe end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f recipes/custom_tools.py ]; then
  exec .venv/bin/agent run recipes/custom_tools.py "$@"
fi
exec .venv/bin/agent render --python --browser --user "What is 17 * 23?" "$@"
