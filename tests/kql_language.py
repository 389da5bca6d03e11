"""Runs the official Kusto language service (npm ``@kusto/language-service-next``, driven by
tests/js/check-kql.js) on KQL text and returns its diagnostics. Shared by the KQL and Bicep tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
CHECK_SCRIPT = JS_DIR / "check-kql.js"
PACKAGE_DIR = JS_DIR / "node_modules" / "@kusto" / "language-service-next"


def require_language_service() -> str:
    """Path of node; skips when node is missing, fails when the npm package was not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the KQL language-service checks need Node.js")
    if not PACKAGE_DIR.is_dir():
        pytest.fail(f"{PACKAGE_DIR} is missing: run `npm ci` in tests/js (scripts/setup-system.sh does)")
    return node


def analyse(queries: dict[str, str]) -> dict[str, list[dict]]:
    """Diagnostics per query name, against the customEvents and requests schemas."""
    node = require_language_service()
    payload = {"queries": [{"name": name, "text": text} for name, text in queries.items()]}
    done = subprocess.run(
        [node, str(CHECK_SCRIPT)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"check-kql.js failed ({done.returncode}): {done.stderr}"
    return {result["name"]: result["diagnostics"] for result in json.loads(done.stdout)["results"]}


def describe(diagnostics: dict[str, list[dict]], texts: dict[str, str]) -> str:
    """Readable list of the diagnostics with the text they point at, for assertion messages."""
    lines = []
    for name, found in diagnostics.items():
        for d in found:
            snippet = texts[name][d["start"] : d["start"] + max(d["length"], 1)]
            lines.append(f"{name}: {d['severity']} {d['code']} at {d['start']} ({snippet!r}): {d['message']}")
    return "\n".join(lines)
