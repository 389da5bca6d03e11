#!/usr/bin/env bash
# Set up everything the tests need (venv, Python packages, chromium, npm tools), lint, run the suite.
# Tests that need the labelled tweets run when SENTIMENT_DATA_DIR names that folder, else they skip.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k normalizer; the fast loop, without the tests
# marked slow: bash scripts/test.sh -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-test.txt
bash scripts/setup-system.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # strict on the deployed code (pyproject.toml)
exec .venv/bin/python -m pytest "$@"
