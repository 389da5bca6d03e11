#!/usr/bin/env bash
# Set up the serving environment and serve the function app locally with the committed model:
# `func start` when Azure Functions Core Tools are installed, else the project's own local host
# (requirements-local.txt: uvicorn, one worker process per CPU), both on http://127.0.0.1:7071/api
# (open /api/ui in a browser).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v func >/dev/null 2>&1; then
  bash scripts/setup.sh requirements.txt
  # Core Tools pick the worker's Python from the active environment.
  # shellcheck disable=SC1091
  source .venv/bin/activate
  [ -f local.settings.json ] || cp local.settings.example.json local.settings.json
  exec func start --port "${PORT:-7071}"
fi
bash scripts/setup.sh requirements-local.txt
echo "Azure Functions Core Tools (func) not found: serving with the local host instead"
exec .venv/bin/python -m serving.local_host --port "${PORT:-7071}"
