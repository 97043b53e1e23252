#!/usr/bin/env bash
# The main job: set everything up, then run a task end to end on the small gpt-oss-architecture
# model that ships with the project (agent/demo_model, trained to use its tools), on the CPU,
# with python running in the real Docker sandbox, greedy decoding: the model decides to call
# python, reads the sandbox's output and answers. It knows only its training tasks' shapes.
#   scripts/demo.sh                          # the default task
#   scripts/demo.sh "How many primes are there below 2500?"
#   scripts/demo.sh --engine http://host:8000/v1 "..."   # any other engine (flags go first)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure-docker.sh
flags=()
while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do flags+=("$1" "$2"); shift 2; done
task="${1:-What is 48213 × 377 − 59?}"
exec .venv/bin/agent run --engine local:demo --tools python --policy default --temperature 0 \
    "${flags[@]}" "$task"
