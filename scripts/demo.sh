#!/usr/bin/env bash
# The main job: a legacy-style workload in a rich container, on the embedded demo image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
