#!/usr/bin/env bash
# Set up the serving environment and serve the function app locally with the committed model:
# `func start` when Azure Functions Core Tools are installed, else the project's own local host
# (requirements-local.txt: uvicorn, one worker process per CPU), both on http://127.0.0.1:7071/api
# (open /api/ui in a browser).
# With Core Tools, the host keeps its state in AzureWebJobsStorage=UseDevelopmentStorage=true
# (local.settings.example.json): the Azurite storage emulator on its default loopback ports, started
# here (npm package azurite, through npx unless `azurite` is installed) and stopped on exit, unless one
# already listens there.
set -euo pipefail
cd "$(dirname "$0")/.."
AZURITE_VERSION=3.37.0
AZURITE_BLOB_PORT=10000

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

azurite_pid=""
stop_azurite() {
  if [ -n "$azurite_pid" ]; then
    kill -TERM -- "-$azurite_pid" 2>/dev/null || kill -TERM "$azurite_pid" 2>/dev/null || true
    wait "$azurite_pid" 2>/dev/null || true
    azurite_pid=""
  fi
}

start_azurite() {
  if port_open "$AZURITE_BLOB_PORT"; then
    echo "storage emulator already listening on 127.0.0.1:$AZURITE_BLOB_PORT: using it"
    return
  fi
  local command=(azurite)
  command -v azurite >/dev/null 2>&1 || command=(npx --yes "azurite@$AZURITE_VERSION")
  # Its own process group (set -m), so that stopping it also stops the node process npx starts.
  # --disableTelemetry: no usage data sent out; --skipApiVersionCheck: accept current storage SDKs.
  set -m
  "${command[@]}" --silent --inMemoryPersistence --disableTelemetry --skipApiVersionCheck \
    --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 &
  azurite_pid=$!
  set +m
  trap stop_azurite EXIT
  trap 'exit 130' INT TERM
  for _ in $(seq 1 120); do
    port_open "$AZURITE_BLOB_PORT" && return
    kill -0 "$azurite_pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "error: Azurite did not start on 127.0.0.1:$AZURITE_BLOB_PORT" >&2
  exit 1
}

if command -v func >/dev/null 2>&1; then
  bash scripts/setup.sh requirements.txt
  # Core Tools pick the worker's Python from the active environment.
  # shellcheck disable=SC1091
  source .venv/bin/activate
  [ -f local.settings.json ] || cp local.settings.example.json local.settings.json
  start_azurite
  # Not exec: the EXIT trap must still stop Azurite when func ends.
  func start --port "${PORT:-7071}"
  exit $?
fi
bash scripts/setup.sh requirements-local.txt
echo "Azure Functions Core Tools (func) not found: serving with the local host instead"
exec .venv/bin/python -m devtools.local_host --port "${PORT:-7071}"
