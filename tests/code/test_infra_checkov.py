"""checkov's Azure policy checks pass on infra/ with zero failures; every skipped check carries its
reason in the Bicep. checkov exits 0 on a Bicep file it cannot parse (it just checks less), so the
report's parsing errors count as failures here; a broken copy proves that they are caught."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # one checkov run takes ~6-12 s here

INFRA = Path(__file__).resolve().parents[2] / "infra"
CHECKOV = Path(sys.executable).with_name("checkov")
# The skips the README lists, each justified by a //checkov:skip comment in the resource.
DOCUMENTED_SKIPS = {
    "CKV_AZURE_17": "modules/functionapp.bicep",
    "CKV_AZURE_35": "modules/storage.bicep",
    "CKV_AZURE_59": "modules/storage.bicep",
    "CKV_AZURE_109": "modules/keyvault.bicep",
    "CKV_AZURE_41": "modules/keyvault.bicep",
    "CKV_AZURE_114": "modules/keyvault.bicep",
    "CKV_AZURE_131": "main.bicep",
}
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)")


def run_checkov(directory: Path) -> tuple[int, dict]:
    """checkov's exit code and JSON report for the Bicep files of a directory, run offline."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_LOG_LEVEL": "ERROR"}
    env.pop("BC_API_KEY", None)
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "bicep", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode in (0, 1), f"checkov crashed ({done.returncode}): {done.stderr[-2000:]}"
    report = json.loads(done.stdout)
    if isinstance(report, list):  # one entry per framework when several ran
        (report,) = [r for r in report if r.get("check_type") == "bicep"]
    return done.returncode, report


def problems(report: dict) -> list[str]:
    """Everything that must fail the build: failed checks and files checkov could not parse."""
    results = report.get("results", {})
    found = [
        f"{c['check_id']} {c['check_name']} ({c['file_path']}, {c['resource']})"
        for c in results.get("failed_checks", [])
    ]
    files = set(results.get("parsing_errors", []))
    if report["summary"].get("parsing_errors") and not files:
        files.add("<unnamed file>")
    found += [f"parsing error: {path}" for path in sorted(files)]
    return found


@pytest.fixture(scope="module")
def report() -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: install requirements-test.txt")
    _, found = run_checkov(INFRA)
    return found


def test_checkov_passes_with_no_failed_check_and_no_parsing_error(report):
    assert problems(report) == []
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    assert summary["passed"] >= 5, summary  # the checks really ran on our resources
    checked = {c["file_path"] for c in report["results"]["passed_checks"]}
    assert {"/modules/storage.bicep", "/modules/functionapp.bicep", "/modules/keyvault.bicep"} <= checked


def test_key_vault_passes_the_recoverable_check(report):
    """The vault's own protection is checked, not skipped: recoverable = soft delete + purge protection."""
    passed = {(c["check_id"], c["file_path"]) for c in report["results"]["passed_checks"]}
    assert ("CKV_AZURE_42", "/modules/keyvault.bicep") in passed


def test_every_skip_is_documented_and_carries_its_reason(report):
    skipped = report["results"].get("skipped_checks", [])
    assert {c["check_id"] for c in skipped} == set(DOCUMENTED_SKIPS)
    for check in skipped:
        check_id = check["check_id"]
        assert check["file_path"] == "/" + DOCUMENTED_SKIPS[check_id]
        assert len(check["check_result"]["suppress_comment"].strip()) >= 20, check_id
    in_source = {}
    for path in INFRA.rglob("*.bicep"):
        for match in SKIP_COMMENT.finditer(path.read_text(encoding="utf-8")):
            in_source[match.group(1)] = (path.relative_to(INFRA).as_posix(), match.group(2).strip())
    assert {k: v[0] for k, v in in_source.items()} == DOCUMENTED_SKIPS
    assert all(len(reason) >= 20 for _, reason in in_source.values())


def test_a_bicep_syntax_error_is_caught_although_checkov_exits_zero(tmp_path):
    broken = tmp_path / "infra"
    shutil.copytree(INFRA, broken, ignore=shutil.ignore_patterns("*.json"))
    storage = broken / "modules" / "storage.bicep"
    storage.write_text(
        storage.read_text(encoding="utf-8")
        + "\nresource broken 'Microsoft.Storage/storageAccounts@2025-01-01' = {\n"
        "  name: \n",
        encoding="utf-8",
    )
    exit_code, report = run_checkov(broken)
    assert exit_code == 0 and report["summary"]["failed"] == 0, "checkov alone reports success"
    found = problems(report)
    assert any(p.startswith("parsing error:") and p.endswith("storage.bicep") for p in found), found
