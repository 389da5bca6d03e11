"""scripts/azure-bootstrap.sh, run for real against recording stand-ins for ``az`` and ``gh`` on PATH.

The stand-ins log every argv and answer from a JSON state file that their own create/set commands
update, like a small Azure subscription and GitHub repository would: the tests assert the commands and
their arguments, and that a second run against the resulting state changes nothing."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "azure-bootstrap.sh"
REPO = "air-paradis/sentiment"
GROUP = "rg-air-paradis-prod"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
TENANT = "99999999-8888-7777-6666-555555555555"
GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
# Blob Data Owner, Metrics Publisher, Table Data Contributor, Key Vault Secrets User.
APP_ROLES = (
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "3913510d-42f4-4e42-8a64-420c390055eb",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "4633458b-17de-408a-b874-0445c86b69e6",
)
STORAGE_TABLE_DATA_CONTRIBUTOR = APP_ROLES[2]
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
ARGS = ["--repo", REPO, "--resource-group", GROUP, "--location", "francecentral"]
ARGS += ["--alert-email", "oncall@example.com"]
FRESH = {"providers": {"Microsoft.Storage": "Registered", "Microsoft.Web": "Registered"}}

# The stand-in, one program for both tools (named by how it is called). Unknown commands exit 99.
FAKE = r"""
import json, os, re, sys

tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\n")
path = os.environ["FAKE_STATE"]
state = json.load(open(path))


def opt(name):
    return args[args.index(name) + 1] if name in args else None


def save():
    json.dump(state, open(path, "w"))


def missing():
    sys.stderr.write("ERROR: (ResourceNotFound) not found\n")
    sys.exit(3)


words = " ".join(a for a in args if not a.startswith("-"))
if tool == "az" and args[:2] == ["account", "show"]:
    print({"id": state.get("subscription", ""), "tenantId": state.get("tenant", "")}[opt("--query")])
elif tool == "az" and args[:2] == ["provider", "show"]:
    print(state["providers"].get(opt("--namespace"), "NotRegistered"))
elif tool == "az" and args[:2] == ["provider", "register"]:
    state["providers"][opt("--namespace")] = "Registered"
    save()
elif tool == "az" and args[:2] == ["group", "exists"]:
    print("true" if opt("--name") in state.get("groups", {}) else "false")
elif tool == "az" and args[:2] == ["group", "create"]:
    state.setdefault("groups", {})[opt("--name")] = opt("--location")
    save()
elif tool == "az" and args[:2] == ["identity", "show"]:
    found = state.get("identities", {}).get(opt("--resource-group") + "/" + opt("--name")) or missing()
    print(found[opt("--query")])
elif tool == "az" and args[:2] == ["identity", "create"]:
    key = opt("--resource-group") + "/" + opt("--name")
    number = len(state.setdefault("identities", {})) + 1
    state["identities"][key] = {"clientId": f"client-{number}", "principalId": f"principal-{number}"}
    save()
elif tool == "az" and args[:3] == ["identity", "federated-credential", "show"]:
    key = opt("--resource-group") + "/" + opt("--identity-name") + "/" + opt("--name")
    print((state.get("credentials", {}).get(key) or missing())["subject"])
elif tool == "az" and args[:3] == ["identity", "federated-credential", "create"]:
    key = opt("--resource-group") + "/" + opt("--identity-name") + "/" + opt("--name")
    state.setdefault("credentials", {})[key] = {"subject": opt("--subject")}
    save()
elif tool == "az" and args[:3] == ["role", "assignment", "list"]:
    wanted = [opt("--assignee"), opt("--role"), opt("--scope")]
    print(sum(1 for a in state.get("assignments", []) if a[:3] == wanted))
elif tool == "az" and args[:3] == ["role", "assignment", "create"]:
    new = [opt("--assignee-object-id"), opt("--role"), opt("--scope"), opt("--condition")]
    state.setdefault("assignments", []).append(new)
    save()
elif tool == "gh" and args[0] == "api" and "--method" not in args:
    name = args[1].rsplit("/", 1)[1]
    if name not in state.get("environments", []):
        sys.stderr.write("gh: Not Found (HTTP 404)\n")
        sys.exit(1)
    print(name)
elif tool == "gh" and args[0] == "api" and opt("--method") == "PUT":
    state.setdefault("environments", []).append(args[-2].rsplit("/", 1)[1])
    save()
elif tool == "gh" and args[:2] == ["variable", "list"]:
    name = re.search(r'select\(\.name == "(\w+)"\)', opt("--jq")).group(1)
    value = state.get("variables", {}).get(name)
    if value is not None:
        print(value)
elif tool == "gh" and args[:2] == ["variable", "set"]:
    state.setdefault("variables", {})[args[2]] = opt("--body")
    save()
else:
    sys.stderr.write("unexpected command\n")
    sys.exit(99)
"""


class Cloud:
    """The stand-ins' folder, state and log."""

    def __init__(self, folder: Path, state: dict) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True)
        self.state_file = folder / "state.json"
        self.log = folder / "calls.log"
        program = self.bin / "fake.py"
        program.write_text(f"#!{sys.executable}\n{FAKE}")
        for tool in ("az", "gh"):
            (self.bin / tool).symlink_to(program)
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
        self.state_file.write_text(json.dumps({"subscription": SUBSCRIPTION, "tenant": TENANT, **state}))

    @property
    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def run(self, *extra: str, args: list[str] = ARGS) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        start = len(self.calls())
        env = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LOG": str(self.log),
            "FAKE_STATE": str(self.state_file),
        }
        done = subprocess.run(
            ["bash", str(SCRIPT), *args, *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done, self.calls()[start:]

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def changes(calls: list[list[str]]) -> list[list[str]]:
    """The calls that change something (everything else is a question)."""
    verbs = {"create", "register", "set"}
    return [c for c in calls if verbs & set(c[1:4]) or (c[:2] == ["gh", "api"] and "--method" in c)]


def opt(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


@pytest.fixture
def cloud(tmp_path: Path) -> Cloud:
    return Cloud(tmp_path, FRESH)


def test_first_run_sets_up_everything_the_deploy_workflow_needs(cloud: Cloud):
    done, calls = cloud.run()
    assert done.returncode == 0, done.stderr
    assert not [c for c in calls if c[0] not in ("az", "gh")]
    made = changes(calls)
    registered = [opt(c, "--namespace") for c in made if c[1:3] == ["provider", "register"]]
    assert registered == [
        "Microsoft.App",
        "Microsoft.ManagedIdentity",
        "Microsoft.Insights",
        "Microsoft.OperationalInsights",
        "Microsoft.KeyVault",
    ]  # the two already registered are left alone
    assert all("--wait" in c for c in made if c[1:3] == ["provider", "register"])
    state = cloud.state
    assert state["groups"] == {GROUP: "francecentral"}
    assert list(state["identities"]) == [f"{GROUP}/id-github-deploy-prod", f"{GROUP}/id-github-retrain-prod"]
    deploy_credential, retrain_credential = [
        c for c in made if c[1:4] == ["identity", "federated-credential", "create"]
    ]
    for credential in (deploy_credential, retrain_credential):
        assert opt(credential, "--issuer") == "https://token.actions.githubusercontent.com"
        assert opt(credential, "--audiences") == "api://AzureADTokenExchange"
    assert opt(deploy_credential, "--subject") == f"repo:{REPO}:environment:production"
    assert opt(retrain_credential, "--subject") == f"repo:{REPO}:environment:retrain"

    grants = [c for c in made if c[1:4] == ["role", "assignment", "create"]]
    by_principal: dict[str, set[str]] = {}
    for grant in grants:  # the resource group only, never the subscription
        assert opt(grant, "--scope") == GROUP_ID
        assert opt(grant, "--assignee-principal-type") == "ServicePrincipal"
        by_principal.setdefault(opt(grant, "--assignee-object-id"), set()).add(opt(grant, "--role"))
    assert by_principal == {
        "principal-1": {CONTRIBUTOR, RBAC_ADMINISTRATOR},
        # The retraining identity: data roles only (feedback pull + retention, training data), no Contributor.
        "principal-2": {STORAGE_TABLE_DATA_CONTRIBUTOR, STORAGE_BLOB_DATA_READER},
    }
    [administrator] = [c for c in grants if opt(c, "--role") == RBAC_ADMINISTRATOR]
    condition = opt(administrator, "--condition")
    assert opt(administrator, "--condition-version") == "2.0"
    for action in ("roleAssignments/write", "roleAssignments/delete"):
        assert action in condition
    assert condition.count("GuidEquals {" + ", ".join(APP_ROLES) + "}") == 2

    assert state["environments"] == ["production", "retrain"]
    assert state["variables"] == {
        "AZURE_CLIENT_ID": "client-1",
        "AZURE_RETRAIN_CLIENT_ID": "client-2",
        "AZURE_TENANT_ID": TENANT,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "AZURE_RESOURCE_GROUP": GROUP,
        "AZURE_ENV_NAME": "prod",
        "ALERT_EMAIL": "oncall@example.com",
    }
    assert all(opt(c, "--repo") == REPO for c in made if c[:2] == ["gh", "variable"])


def test_the_variables_are_the_ones_the_workflows_read(cloud: Cloud):
    cloud.run()
    workflows = REPO_ROOT / ".github" / "workflows"
    text = (workflows / "deploy.yml").read_text() + (workflows / "retrain.yml").read_text()
    for name in cloud.state["variables"]:
        assert f"vars.{name}" in text, name


def test_every_query_comes_before_the_change_it_guards(cloud: Cloud):
    _, calls = cloud.run()
    for index, call in enumerate(calls):
        if call in changes(calls) and call[:2] != ["az", "provider"]:
            asked = [c[:3] for c in calls[:index] if c not in changes(calls)]
            assert asked, call


def test_second_run_changes_nothing(cloud: Cloud):
    first, _ = cloud.run()
    assert first.returncode == 0, first.stderr
    before = cloud.state
    second, calls = cloud.run()
    assert second.returncode == 0, second.stderr
    assert calls and changes(calls) == []
    assert cloud.state == before


def test_a_changed_setting_changes_only_what_differs(cloud: Cloud):
    cloud.run()
    args = [*ARGS[:-1], "new-oncall@example.com"]
    done, calls = cloud.run(args=args)
    assert done.returncode == 0, done.stderr
    assert changes(calls) == [
        ["gh", "variable", "set", "ALERT_EMAIL", "--repo", REPO, "--body", "new-oncall@example.com"]
    ]


def test_a_credential_that_trusts_another_subject_is_an_error_not_overwritten(cloud: Cloud):
    cloud.run()
    state = cloud.state
    key = f"{GROUP}/id-github-deploy-prod/github-production"
    state["credentials"][key]["subject"] = "repo:someone/else:environment:production"
    cloud.state_file.write_text(json.dumps(state))
    done, calls = cloud.run()
    assert done.returncode == 1
    assert "trusts repo:someone/else:environment:production" in done.stderr
    assert changes(calls) == []


def test_dry_run_prints_every_command_and_runs_none(cloud: Cloud, tmp_path: Path):
    done, calls = cloud.run("--dry-run")
    assert done.returncode == 0, done.stderr
    assert calls == []  # neither az nor gh was called
    printed = [shlex.split(line[2:]) for line in done.stdout.splitlines() if line.startswith("+ ")]
    questions = [line for line in done.stderr.splitlines() if line.startswith("? ")]
    assert questions and all(line.split()[1] in ("az", "gh") for line in questions)
    # A fresh subscription: the dry run lists what a real first run on an empty one does.
    empty = Cloud(tmp_path / "empty", {"providers": {}})
    real, real_calls = empty.run()
    assert real.returncode == 0, real.stderr
    expected = [c for c in changes(real_calls)]
    placeholders = {
        "client-1": "<client-id>",
        "principal-1": "<principal-id>",
        "client-2": "<client-id>",
        "principal-2": "<principal-id>",
        SUBSCRIPTION: "<subscription-id>",
        TENANT: "<tenant-id>",
    }

    def generic(call: list[str]) -> list[str]:
        text = json.dumps(call)
        for value, placeholder in placeholders.items():
            text = text.replace(value, placeholder)
        return json.loads(text)

    assert printed == [generic(c) for c in expected]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ARGS[:4],
        [*ARGS, "--env-name", "Production-Environment"],
        ["--repo", "not-a-repo", *ARGS[2:]],
    ],
)
def test_bad_arguments_stop_before_any_command(cloud: Cloud, args):
    done, calls = cloud.run(args=args)
    assert done.returncode != 0
    assert calls == []


def test_shellcheck_passes():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (scripts/setup-system.sh installs it)")
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
