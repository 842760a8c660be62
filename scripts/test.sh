#!/usr/bin/env bash
# Run richinit's whole test suite as root on Debian 12: installs what it needs,
# lints, then runs the unit and the integration tests (real kernel, real runtimes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q tests "$@"
