#!/usr/bin/env bash
# Create .venv with Python 3.13 (if needed) and install one requirements file into it.
# Usage: bash scripts/setup.sh requirements.txt|requirements-train.txt|requirements-test.txt
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements.txt}"
python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.13 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
      python_bin="$candidate"
      break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "error: Python 3.13 is required (install it, or set PYTHON=/path/to/python3.13)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] ||
  ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
  rm -rf .venv
  "$python_bin" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
