#!/usr/bin/env bash
# System tools the test suite drives for real: Debian chromium + chromedriver (browser test),
# shellcheck (workflow lint), and the npm packages under tests/js (Kusto language service).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    echo "installing system packages: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: cannot install ${missing[*]} (no apt-get); the tests that need them will skip" >&2
  fi
fi
if [ -f tests/js/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "warning: npm not found; the KQL language-service tests will skip" >&2
  fi
fi
