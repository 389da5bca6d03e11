"""The Azure infrastructure as its Bicep says it, checked offline: every file parses (pycep, the
parser checkov uses) and the parsed templates hold what the service relies on: resources and API
versions, the managed identity wired everywhere, HTTPS/TLS, no shared keys or local auth, the
CONTRACT app settings, alert thresholds and windows from parameters, queries from infra/queries/.

pycep writes identifiers and string literals alike (``"location"`` may be either), so names are
resolved through the file's parameters and variables where it matters."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from serving import telemetry
from tests.kql_language import analyse, describe

pytestmark = pytest.mark.slow  # the first pycep parse builds its grammar (~20 s), then it is cached

INFRA = Path(__file__).resolve().parents[2] / "infra"
# The workbook's panels, in the order they are shown.
WORKBOOK_PANELS = [
    "prediction-volume",
    "negative-share",
    "wrong-prediction-rate",
    "request-latency",
    "request-failures",
    "topic-volume",
    "topic-negative-share",
    "score-histogram",
    "score-psi",
    "unknown-share",
]
MODULE_FILES = ("monitoring", "storage", "identity", "keyvault", "functionapp", "alerts", "workbook")

# Current API versions (Azure resource reference, November 2026); an older one needs a reason.
API_VERSIONS = {
    "Microsoft.OperationalInsights/workspaces": "2025-02-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Storage/storageAccounts": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2025-01-01",
    "Microsoft.Storage/storageAccounts/tableServices": "2025-01-01",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "2025-01-01",
    "Microsoft.KeyVault/vaults": "2024-11-01",
    "Microsoft.KeyVault/vaults/secrets": "2024-11-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2024-11-30",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.Web/serverfarms": "2024-11-01",
    "Microsoft.Web/sites": "2024-11-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2024-11-01",
    "Microsoft.Insights/actionGroups": "2023-01-01",
    "Microsoft.Insights/scheduledQueryRules": "2023-12-01",
    "Microsoft.Insights/workbooks": "2023-06-01",
}
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
CONTRACT_ALERT_DEFAULTS = {
    "wrongPredictionThreshold": 3,
    "wrongPredictionWindow": "PT5M",
    "badBuzzMinTexts": 50,
    "badBuzzNegativePercent": 70,
    "badBuzzWindow": "PT30M",
}
# The topic and drift rules' thresholds (main.bicep's defaults; docs/reference/alerts.md).
RADAR_ALERT_DEFAULTS = {
    "topicSpikeSdTenths": 30,
    "topicSpikeMinNegatives": 15,
    "topicSpikeBaselineHours": 47,
    "safetySpikeMinNegatives": 5,
    "scoreBaselineHistogram": [1] * 10,
    "scoreDriftMaxPsiHundredths": 20,
    "scoreDriftMinTexts": 500,
    "inputDriftMaxUnknownPercent": 35,
    "inputDriftMaxEmptyPercent": 20,
    "inputDriftMinTexts": 100,
}


@pytest.fixture(scope="session")
def bicep() -> dict[str, dict]:
    """Every .bicep under infra/ parsed once per test session, keyed by its path under infra/."""
    from pycep import BicepParser

    parser = BicepParser()
    return {
        path.relative_to(INFRA).as_posix(): parser.parse(file_path=path)
        for path in sorted(INFRA.rglob("*.bicep"))
    }


def module(bicep: dict[str, dict], name: str) -> dict:
    return bicep[f"modules/{name}.bicep"]


def resource(template: dict, name: str) -> dict:
    return template["resources"][name]["config"]


def resources_of_type(template: dict, type_: str) -> dict[str, dict]:
    return {name: r for name, r in template["resources"].items() if r["type"] == type_}


def param_defaults(template: dict) -> dict[str, Any]:
    return {name: p["default"] for name, p in template["parameters"].items()}


def decorators(template: dict, param: str) -> dict[str, Any]:
    return {d["type"]: d.get("argument") for d in template["parameters"][param]["decorators"]}


def _duration_minutes(value: str) -> int:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", value)
    assert match, value
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


BICEP_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", "$": "$"}


class Resolver:
    """Evaluates the small subset of Bicep that builds the alert rules, the queries and the workbook:
    identifiers and member access, ``${...}`` interpolation of identifiers (and ``item.field``), objects,
    arrays, ``for`` loops over an array, ``loadTextContent``, ``replace``, ``concat``, ``string`` and
    ``toLower``. Anything else raises, so a test
    never passes on an expression it did not understand."""

    def __init__(self, template: dict, path: Path, params: dict[str, Any]) -> None:
        self.template = template
        self.folder = path.parent
        self.params = params

    def name(self, identifier: str, scope: dict[str, Any]) -> Any:
        if identifier in scope:
            return scope[identifier]
        if identifier in self.params:
            return self.params[identifier]
        return self.value(self.template["variables"][identifier]["value"])

    def known(self, identifier: str, scope: dict[str, Any]) -> bool:
        return (
            identifier in scope
            or identifier in self.params
            or identifier in self.template.get("variables", {})
        )

    def text(self, node: str, scope: dict[str, Any]) -> Any:
        if self.known(node, scope):
            return self.name(node, scope)
        member = re.fullmatch(r"(\w+)\.(\w+)", node)
        if member and member.group(1) in scope:
            return scope[member.group(1)][member.group(2)]

        def interpolate(match: re.Match) -> str:
            head, _, attribute = match.group(1).partition(".")
            assert self.known(head, scope), f"cannot resolve ${{{match.group(1)}}}"
            value = self.name(head, scope)
            return str(value[attribute] if attribute else value)

        literal = re.sub(r"\\(.)", lambda m: BICEP_ESCAPES.get(m.group(1), m.group(0)), node)
        return re.sub(r"\$\{(\w+(?:\.\w+)?)\}", interpolate, literal)

    def function(self, function: dict, scope: dict[str, Any]) -> Any:
        args = function["parameters"]
        if function["type"] == "load_text_content":
            return (self.folder / args["file_path"]).read_text(encoding="utf-8")
        if function["type"] == "replace":
            return self.value(args["original_string"], scope).replace(
                self.value(args["old_string"], scope), self.value(args["new_string"], scope)
            )
        if function["type"] == "concat":
            return [item for arg in args.values() for item in self.value(arg, scope)]
        if function["type"] == "string":
            return json.dumps(self.value(args["value_to_convert"], scope), separators=(",", ":"))
        if function["type"] == "to_lower":
            return self.value(args["string_to_change"], scope).lower()
        if function["type"] == "contains":
            return self.value(args["item_to_find"], scope) in self.value(args["container"], scope)
        if function["type"] == "empty":
            return not self.value(args["item_to_test"], scope)
        raise NotImplementedError(function["type"])

    def value(self, node: Any, scope: dict[str, Any] | None = None) -> Any:
        scope = scope or {}
        if isinstance(node, str):
            return self.text(node, scope)
        if isinstance(node, bool | int) or node is None:
            return node
        if isinstance(node, list):
            return [self.value(item, scope) for item in node]
        if isinstance(node, dict) and "function" in node:
            return self.function(node["function"], scope)
        if isinstance(node, dict) and "loop_type" in node:
            assert node["loop_type"]["type"] == "array" and node["condition"] is None
            detail = node["loop_type"]["detail"]
            items = self.value(detail["array_name"], scope)
            return [self.value(node["config"], {**scope, detail["item_name"]: item}) for item in items]
        operator = node.get("operator") if isinstance(node, dict) else None
        if isinstance(operator, dict) and operator.get("type") == "conditional":
            operands = operator["operands"]
            chosen = "true_value" if self.value(operands["condition"], scope) else "false_value"
            return self.value(operands[chosen], scope)
        if isinstance(node, dict) and not isinstance(node.get("operator"), dict):  # not an operator node
            return {key.strip("'"): self.value(item, scope) for key, item in node.items()}
        raise NotImplementedError(repr(node)[:200])


ALERT_RULE_NAMES = (
    "wrong-predictions",
    "bad-buzz",
    "daily-cap",
    "topic-spike",
    "safety-spike",
    "score-drift",
    "input-drift",
)
# Rules that run another rule's query file (with other parameters substituted).
SHARED_QUERY = {"safety-spike": "topic-spike"}
# Rules that query the Log Analytics workspace (its operation log) rather than Application Insights.
WORKSPACE_RULES = {"daily-cap"}
# The columns of the workspace function _LogOperation(), declared for the language service (which knows
# the Application Insights tables only).
LOG_OPERATION_SCHEMA = (
    "let _LogOperation = datatable(TimeGenerated: datetime, Category: string, Operation: string, "
    "Level: string, Detail: string, _ResourceId: string)[];\n"
)
ALERT_MODULE_PARAMS = (
    "location",
    "tags",
    "appInsightsId",
    "workspaceId",
    "ruleNamePrefix",
    *CONTRACT_ALERT_DEFAULTS,
    "wrongPredictionEvaluationFrequency",
    "badBuzzEvaluationFrequency",
    *[
        "alertWebhookUrl",
        "topicSpikeSdTenths",
        "topicSpikeMinNegatives",
        "topicSpikeBaselineHours",
        "safetySpikeMinNegatives",
        "topicSpikeWindow",
        "topicSpikeEvaluationFrequency",
        "topicSpikeQueryTimeRange",
        "scoreBaselineHistogram",
        "scoreDriftMaxPsiHundredths",
        "scoreDriftMinTexts",
        "scoreDriftWindow",
        "scoreDriftEvaluationFrequency",
        "inputDriftMaxUnknownPercent",
        "inputDriftMaxEmptyPercent",
        "inputDriftMinTexts",
        "inputDriftWindow",
        "inputDriftEvaluationFrequency",
    ],
)


def alert_rules(bicep: dict[str, dict], **params: Any) -> dict[str, dict]:
    """The scheduled query rules the ``for`` loop of alerts.bicep deploys, each resolved with these
    parameter values, keyed by the rule's short name (its entry's ``name``)."""
    alerts = module(bicep, "alerts")
    (loop,) = resources_of_type(alerts, "Microsoft.Insights/scheduledQueryRules").values()
    resolver = Resolver(alerts, INFRA / "modules" / "alerts.bicep", params)
    rules = resolver.value(loop["config"])
    entries = resolver.value(alerts["variables"]["rules"]["value"])
    assert len(rules) == len(entries)
    return {entry["name"]: rule for entry, rule in zip(entries, rules, strict=True)}


def traced_alert_rules(bicep: dict[str, dict]) -> dict[str, dict]:
    """The rules with every module parameter set to ``<its name>``, to see which one lands where."""
    return alert_rules(bicep, **{name: f"<{name}>" for name in ALERT_MODULE_PARAMS})


def alert_queries(bicep: dict[str, dict], **overrides: Any) -> dict[str, str]:
    """The KQL each scheduled query rule is deployed with, for main.bicep's defaults (or overrides)."""
    params = {
        **{name: f"<{name}>" for name in ALERT_MODULE_PARAMS},
        **CONTRACT_ALERT_DEFAULTS,
        **RADAR_ALERT_DEFAULTS,
        **overrides,
    }
    return {
        name: rule["properties"]["criteria"]["allOf"][0]["query"]
        for name, rule in alert_rules(bicep, **params).items()
    }


@pytest.fixture(scope="module")
def deployed_queries(bicep) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """The KQL as Azure runs it, analysed in one language-service run: each alert rule's query for
    the default and for other parameter values, each workbook panel with the grain a time range
    gives ({TimeRange:grain} becomes a timespan such as 5m or 1h before the query runs)."""
    texts = {}
    for label, overrides in {
        "defaults": {},
        "custom": {
            "badBuzzMinTexts": 7,
            "badBuzzNegativePercent": 100,
            "scoreBaselineHistogram": [0, 3, 120, 880, 1500, 900, 400, 90, 7, 0],
            "topicSpikeSdTenths": 25,
        },
    }.items():
        for name, text in alert_queries(bicep, **overrides).items():
            texts[f"alert:{name}:{label}"] = (LOG_OPERATION_SCHEMA if name in WORKSPACE_RULES else "") + text
    for path in sorted((INFRA / "queries").glob("workbook-*.kql")):
        for grain in ("5m", "1h"):
            text = path.read_text(encoding="utf-8")
            texts[f"workbook:{path.name}:{grain}"] = text.replace("let grain = 15m;", f"let grain = {grain};")
    return texts, analyse(texts)


# --- files and resources -------------------------------------------------------------------------


def test_every_bicep_file_parses(bicep):
    assert set(bicep) == {"main.bicep"} | {f"modules/{name}.bicep" for name in MODULE_FILES}
    for path, template in bicep.items():
        assert template.get("resources") or template.get("modules"), path


def test_resources_use_the_current_api_versions(bicep):
    declared = {}
    for path, template in bicep.items():
        for name, r in template.get("resources", {}).items():
            declared[f"{path}:{name}"] = (r["type"], r["api_version"])
    types = {type_ for type_, _ in declared.values()}
    assert types == set(API_VERSIONS), types ^ set(API_VERSIONS)
    wrong = {key: v for key, v in declared.items() if API_VERSIONS[v[0]] != v[1]}
    assert not wrong, wrong


def test_main_composes_the_modules_in_dependency_order(bicep):
    modules = bicep["main.bicep"]["modules"]
    paths = {m["detail"]["path"] for m in modules.values()}
    assert paths == {f"modules/{name}.bicep" for name in MODULE_FILES}
    app = modules["functionApp"]["config"]["params"]
    assert app["identityId"] == "identity.outputs.identityId"
    assert app["identityClientId"] == "identity.outputs.clientId"
    assert app["storageAccountName"] == "storage.outputs.storageAccountName"
    assert app["blobEndpoint"] == "storage.outputs.blobEndpoint"
    assert app["appInsightsConnectionString"] == "monitoring.outputs.appInsightsConnectionString"
    assert app["predictionIdKeySecretUri"] == "keyVault.outputs.keySecretUri"
    assert app["predictionIdPreviousKeySecretUri"] == "keyVault.outputs.previousKeySecretUri"
    assert app["ledgerTableEndpoint"] == "storage.outputs.tableEndpoint"
    identity = modules["identity"]["config"]["params"]
    assert identity["storageAccountName"] == "storage.outputs.storageAccountName"
    assert identity["appInsightsName"] == "monitoring.outputs.appInsightsName"
    vault = modules["keyVault"]["config"]["params"]
    assert vault["appPrincipalId"] == "identity.outputs.principalId"
    for name in ("alerts", "workbook"):
        assert modules[name]["config"]["params"]["appInsightsId"] == "monitoring.outputs.appInsightsId"
    assert modules["alerts"]["config"]["params"]["workspaceId"] == "monitoring.outputs.workspaceId"


def test_names_are_unique_per_environment_and_tagged(bicep):
    main = bicep["main.bicep"]
    token = main["variables"]["resourceToken"]["value"]
    assert json.dumps(token).count("unique_string") == 1
    assert "environmentName" in json.dumps(token)
    # uniqueString is 13 characters: 'st' + 13 fits the 24-character storage account limit
    assert main["modules"]["storage"]["config"]["params"]["storageAccountName"] == "st${resourceToken}"
    for name in ("monitoring", "storage", "identity", "keyVault", "functionApp", "alerts", "workbook"):
        assert main["modules"][name]["config"]["params"]["tags"] == "commonTags"
    assert "azd-env-name" in json.dumps(main["variables"]["commonTags"])
    children = {"blobService", "deploymentContainer", "blobDataOwner", "metricsPublisher"}
    children |= {"trainingDataContainer", "tableService", "ledgerTables", "tableDataContributor"}
    children |= {"key", "previousKey", "secretsUser"}
    children |= {"ftpCredentials", "scmCredentials", "storageAccount", "appInsights"}
    for path, template in bicep.items():
        for name, r in template.get("resources", {}).items():
            config = r["config"]["config"] if "loop_type" in r["config"] else r["config"]
            if r["existing"] or (name in children and "tags" not in config):
                continue
            assert config.get("tags") in ("tags", "appTags") or "function" in config["tags"], (path, name)


def test_outputs_name_the_app_its_https_url_and_app_insights(bicep):
    outputs = bicep["main.bicep"]["outputs"]
    assert outputs["functionAppName"]["value"] == "functionApp.outputs.functionAppName"
    assert outputs["functionAppUrl"]["value"] == "functionApp.outputs.functionAppUrl"
    assert outputs["applicationInsightsName"]["value"] == "monitoring.outputs.appInsightsName"
    app_outputs = module(bicep, "functionapp")["outputs"]
    assert app_outputs["functionAppUrl"]["value"] == "https://${functionApp.properties.defaultHostName}"
    assert module(bicep, "monitoring")["outputs"]["appInsightsName"]["value"] == "appInsights.name"


# --- security: storage, monitoring, identity -------------------------------------------------------


def test_storage_has_no_shared_keys_no_public_blobs_and_tls_1_2(bicep):
    storage = module(bicep, "storage")
    props = resource(storage, "storageAccount")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    container = resource(storage, "deploymentContainer")
    assert (
        container["parent"] == "blobService"
        and resource(storage, "blobService")["parent"] == "storageAccount"
    )
    assert container["properties"]["publicAccess"] == "None"
    assert container["name"] == "deploymentContainerName"


def test_app_insights_is_workspace_based_with_local_auth_disabled(bicep):
    monitoring = module(bicep, "monitoring")
    props = resource(monitoring, "appInsights")["properties"]
    assert props["DisableLocalAuth"] is True
    assert props["WorkspaceResourceId"] == "workspace.id"
    assert props["IngestionMode"] == "LogAnalytics"
    assert resource(monitoring, "workspace")["properties"]["sku"]["name"] == "PerGB2018"


def test_the_identity_gets_blob_owner_and_table_contributor_on_storage_and_metrics_publisher(bicep):
    identity = module(bicep, "identity")
    variables = {name: v["value"] for name, v in identity["variables"].items()}
    assignments = resources_of_type(identity, "Microsoft.Authorization/roleAssignments")
    granted = set()
    for r in assignments.values():
        props = r["config"]["properties"]
        assert props["principalId"] == "identity.properties.principalId"
        assert props["principalType"] == "ServicePrincipal"
        role = props["roleDefinitionId"]["function"]
        assert role["type"] == "subscription_resource_id"
        assert role["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role_id = variables[role["parameters"]["resource_name_1"]]
        assert r["config"]["name"]["function"]["type"] == "guid"
        granted.add((r["config"]["scope"], role_id))
    assert granted == {
        ("storageAccount", STORAGE_BLOB_DATA_OWNER),
        ("storageAccount", STORAGE_TABLE_DATA_CONTRIBUTOR),
        ("appInsights", MONITORING_METRICS_PUBLISHER),
    }
    assert identity["resources"]["storageAccount"]["existing"] is True
    assert identity["resources"]["appInsights"]["existing"] is True
    assert resource(identity, "storageAccount")["name"] == "storageAccountName"
    assert identity["outputs"]["clientId"]["value"] == "identity.properties.clientId"
    assert identity["outputs"]["identityId"]["value"] == "identity.id"


# --- the Function App ------------------------------------------------------------------------------


def test_flex_consumption_plan_on_linux(bicep):
    plan = resource(module(bicep, "functionapp"), "plan")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True


def test_function_app_runs_python_3_13_as_the_user_assigned_identity(bicep):
    app = resource(module(bicep, "functionapp"), "functionApp")
    assert app["kind"] == "functionapp,linux"
    assert app["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {"'${identityId}'": {}}}
    props = app["properties"]
    assert props["serverFarmId"] == "plan.id"
    config = props["functionAppConfig"]
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == "${blobEndpoint}${deploymentContainerName}"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    assert config["scaleAndConcurrency"] == {
        "maximumInstanceCount": "maximumInstanceCount",
        "instanceMemoryMB": "instanceMemoryMB",
        "triggers": {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}},
    }
    python_version = (Path(__file__).resolve().parents[2] / ".python-version").read_text().strip()
    assert python_version.startswith(config["runtime"]["version"])


def test_function_app_is_https_only_with_tls_1_2_and_no_ftp_or_basic_auth(bicep):
    functionapp = module(bicep, "functionapp")
    props = resource(functionapp, "functionApp")["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    policies = resources_of_type(functionapp, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {r["config"]["name"]: r["config"]["properties"]["allow"] for r in policies.values()} == {
        "ftp": False,
        "scm": False,
    }


def test_publishing_credential_policies_carry_a_location(bicep):
    """Without one, ARM rejects the PUT: BadRequest 51008 "The parameter location has an invalid value"."""
    functionapp = module(bicep, "functionapp")
    policies = resources_of_type(functionapp, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert len(policies) == 2
    for name, r in policies.items():
        assert r["config"].get("location") == "location", name
    assert "location" in functionapp["parameters"]


def test_http_concurrency_per_instance_is_explicit_with_its_reason(bicep):
    main = bicep["main.bicep"]
    assert param_defaults(main)["httpPerInstanceConcurrency"] == 4
    assert decorators(main, "httpPerInstanceConcurrency")["min_value"] == 1
    params = main["modules"]["functionApp"]["config"]["params"]
    assert params["httpPerInstanceConcurrency"] == "httpPerInstanceConcurrency"
    text = (INFRA / "modules" / "functionapp.bicep").read_text(encoding="utf-8")
    lines = text.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.strip().startswith("perInstanceConcurrency:")]
    reason = [line.strip() for line in lines[at - 3 : at] if line.strip().startswith("//")]
    assert reason and "CPU-bound" in " ".join(reason), "the value's reason belongs in a comment above it"


def test_app_settings_are_the_contract_ones_with_identity_based_connections(bicep):
    settings = {
        s["name"]: s["value"]
        for s in resource(module(bicep, "functionapp"), "functionApp")["properties"]["siteConfig"][
            "appSettings"
        ]
    }
    assert settings["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings[telemetry.CONNECTION_STRING_ENV] == "appInsightsConnectionString"
    assert (
        settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "Authorization=AAD;ClientId=${identityClientId}"
    )
    assert settings[telemetry.WORKER_TELEMETRY_ENV] == "true"
    assert settings["PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"] == telemetry.APP_LOGGER_NAME
    assert settings["MODEL_PATH"] == "modelPath"
    assert settings[telemetry.QUEUE_SIZE_ENV] == telemetry.DEFAULT_QUEUE_SIZE
    include_text = settings[telemetry.INCLUDE_TEXT_ENV]["operator"]
    assert include_text["type"] == "conditional"
    assert include_text["operands"] == {
        "condition": "feedbackIncludeText",
        "true_value": "true",
        "false_value": "false",
    }
    # Flex Consumption takes runtime and version from functionAppConfig and rejects these settings;
    # a plain AzureWebJobsStorage would mean a connection string with an account key.
    for forbidden in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "AzureWebJobsStorage"):
        assert forbidden not in settings
    assert "AccountKey" not in json.dumps(settings)
    main = bicep["main.bicep"]
    assert param_defaults(main)["modelPath"] == "model/sentiment.onnx"
    assert param_defaults(main)["feedbackIncludeText"] is True


# --- alerts -----------------------------------------------------------------------------------------


def test_alert_parameters_default_to_the_contract_and_flow_from_main(bicep):
    main = bicep["main.bicep"]
    defaults = param_defaults(main)
    for name, value in CONTRACT_ALERT_DEFAULTS.items():
        assert defaults[name] == value, name
        assert main["modules"]["alerts"]["config"]["params"][name] == name
    assert defaults["alertEmail"] is None  # required: no environment gets alerts sent nowhere
    assert main["modules"]["alerts"]["config"]["params"]["alertEmail"] == "alertEmail"
    assert decorators(main, "badBuzzNegativePercent")["min_value"] == 1
    assert decorators(main, "badBuzzNegativePercent")["max_value"] == 100
    # A rule that runs less often than its window is long lets a burst straddle two evaluations.
    assert _duration_minutes(defaults["wrongPredictionEvaluationFrequency"]) == 1
    assert _duration_minutes(defaults["badBuzzEvaluationFrequency"]) <= _duration_minutes(
        defaults["badBuzzWindow"]
    )


def test_alert_rules_come_from_one_array_one_entry_per_query_file(bicep):
    """A new rule is one entry of ``rules`` plus its infra/queries/alert-<name>.kql."""
    alerts = module(bicep, "alerts")
    rules = resources_of_type(alerts, "Microsoft.Insights/scheduledQueryRules")
    assert list(rules) == ["alertRules"]  # one resource declaration for every rule
    loop = rules["alertRules"]["config"]
    assert loop["loop_type"] == {"type": "array", "detail": {"item_name": "rule", "array_name": "rules"}}
    assert loop["condition"] is None
    names = [entry["name"] for entry in alerts["variables"]["rules"]["value"]]
    assert names == list(ALERT_RULE_NAMES)
    files = sorted(p.stem.removeprefix("alert-") for p in (INFRA / "queries").glob("alert-*.kql"))
    assert sorted({SHARED_QUERY.get(name, name) for name in names}) == files
    assert alerts["outputs"]["alertRuleNames"]["value"]["config"] == "${ruleNamePrefix}-${rule.name}"


def test_every_alert_rule_is_a_log_alert_on_app_insights_to_the_action_group(bicep):
    for name, rule in traced_alert_rules(bicep).items():
        props = rule["properties"]
        assert rule["name"] == f"<ruleNamePrefix>-{name}"  # the names of the rules before the loop
        assert (rule["kind"], rule["location"], rule["tags"]) == ("LogAlert", "<location>", "<tags>")
        expected_scope = "<workspaceId>" if name in WORKSPACE_RULES else "<appInsightsId>"
        assert props["scopes"] == [expected_scope], name
        assert props["autoMitigate"] is True and props["enabled"] is True
        assert props["actions"] == {"actionGroups": ["actionGroup.id"]}
        (criterion,) = props["criteria"]["allOf"]
        assert criterion["timeAggregation"] == "Count"
        assert criterion["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
        assert props["displayName"].startswith("Air Paradis: ") and props["description"]


def test_alert_rules_skip_the_query_validation_that_races_app_insights_creation(bicep):
    """Azure validates a rule's KQL at creation, seconds after App Insights appears, and sometimes
    rejects a valid query; the queries are analysed here instead (test_deployed_alert_queries_...)."""
    for name, rule in traced_alert_rules(bicep).items():
        assert rule["properties"]["skipQueryValidation"] is True, name


def test_wrong_predictions_rule_counts_events_against_the_threshold_in_the_window(bicep):
    rule = traced_alert_rules(bicep)["wrong-predictions"]
    props = rule["properties"]
    assert props["windowSize"] == "<wrongPredictionWindow>"
    assert props["evaluationFrequency"] == "<wrongPredictionEvaluationFrequency>"
    assert props["severity"] == 2
    criterion = props["criteria"]["allOf"][0]
    assert criterion["operator"] == "GreaterThanOrEqual"
    assert criterion["threshold"] == "<wrongPredictionThreshold>"
    assert criterion["query"] == (INFRA / "queries" / "alert-wrong-predictions.kql").read_text(
        encoding="utf-8"
    )
    assert props["description"].startswith("At least <wrongPredictionThreshold> WrongPrediction events")
    assert props["description"].endswith("within <wrongPredictionWindow>.")


def test_bad_buzz_rule_fires_on_any_row_over_its_window(bicep):
    props = traced_alert_rules(bicep)["bad-buzz"]["properties"]
    assert props["windowSize"] == "<badBuzzWindow>"
    assert props["evaluationFrequency"] == "<badBuzzEvaluationFrequency>"
    assert props["severity"] == 1
    criterion = props["criteria"]["allOf"][0]
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == (
        "Count",
        "GreaterThan",
        0,
    )
    assert "let minTexts = <badBuzzMinTexts>;" in criterion["query"]
    assert "let negativeShare = <badBuzzNegativePercent> / 100.0;" in criterion["query"]
    assert props["description"] == (
        "At least <badBuzzNegativePercent>% negative among at least <badBuzzMinTexts> texts scored "
        "within <badBuzzWindow>."
    )


def test_action_group_is_global_and_emails_the_on_call_address(bicep):
    group = resource(module(bicep, "alerts"), "actionGroup")
    assert group["location"] == "global"
    assert group["properties"]["enabled"] is True
    (receiver,) = group["properties"]["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail"
    assert receiver["useCommonAlertSchema"] is True


def test_alert_queries_are_the_files_with_the_parameters_substituted(bicep):
    files = INFRA / "queries"
    wrong_file = (files / "alert-wrong-predictions.kql").read_text(encoding="utf-8")
    buzz_file = (files / "alert-bad-buzz.kql").read_text(encoding="utf-8")
    deployed = alert_queries(bicep)
    assert deployed["wrong-predictions"] == wrong_file
    assert deployed["daily-cap"] == (files / "alert-daily-cap.kql").read_text(encoding="utf-8")
    # The defaults render the file's own lines (up to the percent written as a fraction).
    assert deployed["bad-buzz"] == buzz_file.replace(
        "let negativeShare = 0.7;", "let negativeShare = 70 / 100.0;"
    )
    # Other values really land in the query: the replace() targets exist in the file.
    other = alert_queries(bicep, badBuzzMinTexts=120, badBuzzNegativePercent=85)["bad-buzz"]
    assert "let minTexts = 120;" in other and "let negativeShare = 85 / 100.0;" in other
    assert "let minTexts = 50;" not in other and "let negativeShare = 0.7;" not in other


def test_deployed_alert_queries_analyse_clean(deployed_queries):
    texts, diagnostics = deployed_queries
    alerts = {name: found for name, found in diagnostics.items() if name.startswith("alert:")}
    assert len(alerts) == 2 * len(ALERT_RULE_NAMES)
    assert not any(alerts.values()), describe(alerts, texts)


# --- workbook ---------------------------------------------------------------------------------------


def test_workbook_is_shared_on_app_insights_with_every_panel_query_from_its_file(bicep):
    workbook_module = module(bicep, "workbook")
    workbook = resource(workbook_module, "workbook")
    assert workbook["kind"] == "shared"
    assert workbook["name"]["function"]["type"] == "guid"  # workbook names must be GUIDs
    props = workbook["properties"]
    # Lower case, as the portal keys resources: a mixed-case ID leaves the workbook off the component.
    assert props["sourceId"] == {
        "function": {"type": "to_lower", "parameters": {"string_to_change": "appInsightsId"}}
    }
    assert props["category"] == "workbook"
    assert props["serializedData"]["function"] == {
        "type": "string",
        "parameters": {"value_to_convert": "workbookContent"},
    }
    panels = workbook_module["variables"]["panels"]["value"]

    def file_of(
        query: dict,
    ) -> str:  # loadTextContent(file), or the file of replace(loadTextContent(file), ...)
        parameters = query["function"]["parameters"]
        return (
            parameters["file_path"] if "file_path" in parameters else file_of(parameters["original_string"])
        )

    loaded = {file_of(p["query"]) for p in panels}
    on_disk = {f"../queries/{p.name}" for p in (INFRA / "queries").glob("workbook-*.kql")}
    assert loaded == on_disk
    assert {p["name"] for p in panels} == set(WORKBOOK_PANELS)
    item = workbook_module["variables"]["queryItems"]["value"]
    assert item["loop_type"]["detail"] == {"item_name": "panel", "array_name": "panels"}
    assert item["config"]["content"]["timeContextFromParameter"] == "TimeRange"
    assert item["config"]["content"]["visualization"] == "timechart"
    query = item["config"]["content"]["query"]["function"]
    assert query["type"] == "replace"
    grains = {name: workbook_module["variables"][name]["value"] for name in ("fixedGrain", "rangeGrain")}
    assert grains == {"fixedGrain": "let grain = 15m;", "rangeGrain": "let grain = {TimeRange:grain};"}
    assert (query["parameters"]["old_string"], query["parameters"]["new_string"]) == (
        "fixedGrain",
        "rangeGrain",
    )
    content = workbook_module["variables"]["workbookContent"]["value"]
    assert content["version"] == "Notebook/1.0"
    assert content["fallbackResourceIds"] == ["appInsightsId"]


def test_workbook_serialized_data_is_the_panels_json_with_the_file_queries(bicep):
    workbook_module = module(bicep, "workbook")
    component = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Insights/components/appi-dev"
    resolver = Resolver(
        workbook_module,
        INFRA / "modules" / "workbook.bicep",
        {
            "appInsightsId": component,
            "displayName": "Air Paradis sentiment (dev)",
            "scoreBaselineHistogram": [0, 3, 120, 880, 1500, 900, 400, 90, 7, 0],
        },
    )
    props = resource(workbook_module, "workbook")["properties"]
    assert resolver.value(props["sourceId"]) == component.lower() != component
    serialized = resolver.value(props["serializedData"])
    content = json.loads(serialized)
    assert content["version"] == "Notebook/1.0"
    assert content["fallbackResourceIds"] == [component]
    header, parameters, *panels = content["items"]
    assert header["type"] == 1 and header["content"]["json"].startswith("## Air Paradis")
    (time_range,) = parameters["content"]["parameters"]
    assert (parameters["type"], time_range["name"], time_range["type"]) == (9, "TimeRange", 4)
    files = {p.stem.removeprefix("workbook-"): p for p in (INFRA / "queries").glob("workbook-*.kql")}
    assert [panel["name"] for panel in panels] == WORKBOOK_PANELS
    placeholder = "let baseline = dynamic([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);"
    deployed = "let baseline = dynamic([0,3,120,880,1500,900,400,90,7,0]);"
    for panel in panels:
        item = panel["content"]
        raw = files[panel["name"]].read_text(encoding="utf-8")
        expected = raw.replace("let grain = 15m;", "let grain = {TimeRange:grain};")
        assert item["query"] == expected.replace(placeholder, deployed)
        assert (placeholder in raw) == panel["name"].startswith("score-"), panel["name"]
        assert item["query"] != raw
        assert (panel["type"], item["version"], item["queryType"]) == (3, "KqlItem/1.0", 0)
        assert item["resourceType"] == "microsoft.insights/components"
        assert item["timeContextFromParameter"] == "TimeRange" and item["visualization"] == "timechart"
        assert item["title"]


def test_request_panels_sum_item_count_because_requests_are_sampled():
    """A stored request row stands for itemCount requests: count() would under-report under sampling."""
    for path in sorted((INFRA / "queries").glob("workbook-request-*.kql")):
        code = "\n".join(line.split("//")[0] for line in path.read_text(encoding="utf-8").splitlines())
        assert not re.search(r"\bcount(if)?\s*\(", code), path.name
    failures = (INFRA / "queries" / "workbook-request-failures.kql").read_text(encoding="utf-8")
    assert "requests = sum(itemCount)" in failures
    assert "failures = sumif(itemCount, success == false)" in failures


def test_workbook_queries_analyse_clean_with_the_grain_a_time_range_gives(deployed_queries):
    texts, diagnostics = deployed_queries
    panels = {name: found for name, found in diagnostics.items() if name.startswith("workbook:")}
    assert len(panels) == 2 * len(list((INFRA / "queries").glob("workbook-*.kql")))
    assert all("let grain = 15m;" not in texts[name] for name in panels)
    assert not any(panels.values()), describe(panels, texts)


# --- parameters file --------------------------------------------------------------------------------


def test_parameters_file_sets_every_required_parameter_within_its_bounds(bicep):
    main = bicep["main.bicep"]
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert document["$schema"].endswith("deploymentParameters.json#")
    values = {name: entry["value"] for name, entry in document["parameters"].items()}
    declared = main["parameters"]
    assert set(values) <= set(declared), set(values) - set(declared)
    required = {name for name, p in declared.items() if p["default"] is None}
    # The on-call address is asked for at deployment time (az and azd prompt; CI passes it), so
    # that no environment ships with a placeholder that sends alerts nowhere.
    assert required - set(values) == {"alertEmail"}
    # azd substitutes ${AZURE_ENV_NAME} (the azd environment); az and the workflow pass environmentName.
    assert values["environmentName"] == "${AZURE_ENV_NAME}"
    for name, value in values.items():
        if isinstance(value, str) and re.fullmatch(r"\$\{\w+\}", value):
            continue  # filled in by azd from its environment
        rules = decorators(main, name)
        if "allowed" in rules:
            assert value in rules["allowed"], name
        if "min_value" in rules:
            assert value >= rules["min_value"], name
        if "max_value" in rules:
            assert value <= rules["max_value"], name
        if "max_length" in rules:
            assert len(value) <= rules["max_length"], name
    for name, value in CONTRACT_ALERT_DEFAULTS.items():
        assert values.get(name, value) == value, f"the dev environment keeps the CONTRACT value of {name}"


# --- bounded telemetry: daily cap, its alert, the event bounds --------------------------------------


def app_settings(bicep: dict[str, dict]) -> dict[str, Any]:
    app = resource(module(bicep, "functionapp"), "functionApp")
    return {s["name"]: s["value"] for s in app["properties"]["siteConfig"]["appSettings"]}


def comment_above(path: Path, marker: str, lines_up: int = 14) -> str:
    """The // comment lines just above the first line starting with ``marker``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.strip().startswith(marker)][:1]
    return " ".join(
        line.strip() for line in lines[max(0, at - lines_up) : at] if line.strip().startswith("//")
    )


def test_workspace_daily_cap_is_a_parameter_sized_by_events_instances_and_size(bicep):
    main = bicep["main.bicep"]
    defaults = param_defaults(main)
    assert defaults["logDailyQuotaGb"] == 2
    assert main["modules"]["monitoring"]["config"]["params"]["dailyQuotaGb"] == "logDailyQuotaGb"
    workspace = resource(module(bicep, "monitoring"), "workspace")
    assert workspace["properties"]["workspaceCapping"] == {"dailyQuotaGb": "dailyQuotaGb"}
    reason = comment_above(INFRA / "main.bicep", "@description('Daily ingestion cap")
    # The reasoning names its factors, with the same numbers as the parameters it depends on.
    assert "events per instance per minute x instances x event size" in reason
    assert f"{defaults['maximumInstanceCount']} instances" in reason
    assert f"feedbackEventsPerMinute, {defaults['feedbackEventsPerMinute']}" in reason and "1,440" in reason
    assert "daily-cap alert" in reason


def test_event_bounds_are_explicit_app_settings_with_the_apps_defaults(bicep):
    main = bicep["main.bicep"]
    defaults = param_defaults(main)
    assert defaults["scoredWindowSeconds"] == telemetry.DEFAULT_SCORED_WINDOW_S == 60
    assert defaults["feedbackEventsPerMinute"] == telemetry.DEFAULT_FEEDBACK_EVENTS_PER_MINUTE
    assert decorators(main, "scoredWindowSeconds")["max_value"] == 60  # a window of at most a minute
    params = main["modules"]["functionApp"]["config"]["params"]
    settings = app_settings(bicep)
    for setting, param in (
        (telemetry.SCORED_WINDOW_ENV, "scoredWindowSeconds"),
        (telemetry.FEEDBACK_EVENTS_ENV, "feedbackEventsPerMinute"),
    ):
        assert params[param] == param
        assert settings[setting] == {
            "function": {"type": "string", "parameters": {"value_to_convert": param}}
        }
    reason = comment_above(INFRA / "modules" / "functionapp.bicep", "name: 'OTEL_BLRP_MAX_QUEUE_SIZE'", 8)
    assert "feedbackEventsPerMinute" in reason and "minutes" in reason and "MB" in reason


def test_daily_cap_rule_reads_the_workspace_operation_log(bicep):
    rule = traced_alert_rules(bicep)["daily-cap"]
    props = rule["properties"]
    assert props["scopes"] == ["<workspaceId>"]
    assert props["severity"] == 1
    assert _duration_minutes(props["evaluationFrequency"]) <= _duration_minutes(props["windowSize"])
    criterion = props["criteria"]["allOf"][0]
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", 0)
    code = "\n".join(
        line
        for line in (INFRA / "queries" / "alert-daily-cap.kql").read_text(encoding="utf-8").splitlines()
        if not line.startswith("//")
    )
    # The query Azure Monitor documents for "daily cap reached" (Set daily cap on Log Analytics workspace).
    assert (
        " ".join(code.split())
        == '_LogOperation | where Category =~ "Ingestion" | where Detail contains "OverQuota"'
    )
    assert module(bicep, "monitoring")["outputs"]["workspaceId"]["value"] == "workspace.id"


def test_daily_cap_query_returns_the_cap_event_and_nothing_else():
    duckdb_kql = pytest.importorskip("duckdb_kql")
    connection = duckdb_kql.connect()
    connection.sql(
        "CREATE TABLE _LogOperation "
        "(TimeGenerated TIMESTAMP, Category VARCHAR, Operation VARCHAR, Detail VARCHAR)"
    )
    connection.executemany(
        "INSERT INTO _LogOperation VALUES (TIMESTAMP '2026-11-20 10:00:00', ?, ?, ?)",
        [
            ("Ingestion", "Data collection stopped", "Data collection stopped due to daily limit: OverQuota"),
            ("Ingestion", "Ingestion rate", "The data ingestion volume rate crossed the threshold"),
            ("Agent", "Heartbeat", "OverQuota mentioned by something else"),
        ],
    )
    query = (INFRA / "queries" / "alert-daily-cap.kql").read_text(encoding="utf-8")
    rows = connection.sql(duckdb_kql.to_sql(query)).fetchall()
    assert [row[2] for row in rows] == ["Data collection stopped"]


# --- prediction-id signing keys: Key Vault ------------------------------------------------------------


def test_signing_keys_are_key_vault_references_resolved_with_the_app_identity(bicep):
    from serving import prediction_ids

    settings = app_settings(bicep)
    assert (
        settings[prediction_ids.KEY_SETTING] == "@Microsoft.KeyVault(SecretUri=${predictionIdKeySecretUri})"
    )
    assert (
        settings[prediction_ids.PREVIOUS_KEY_SETTING]
        == "@Microsoft.KeyVault(SecretUri=${predictionIdPreviousKeySecretUri})"
    )
    app = resource(module(bicep, "functionapp"), "functionApp")
    assert app["properties"]["keyVaultReferenceIdentity"] == "identityId"
    outputs = module(bicep, "keyvault")["outputs"]
    variables = {name: v["value"] for name, v in module(bicep, "keyvault")["variables"].items()}
    for output, secret in (
        ("keySecretUri", "keySecretName"),
        ("previousKeySecretUri", "previousKeySecretName"),
    ):
        # Versionless (trailing slash): the app follows the latest version, so a rotation needs no deployment.
        assert outputs[output]["value"] == "${vault.properties.vaultUri}secrets/${" + secret + "}/"
    assert variables["keySecretName"] == "prediction-id-key"
    assert variables["previousKeySecretName"] == "prediction-id-key-previous"


def test_key_vault_is_rbac_only_with_soft_delete_and_purge_protection(bicep):
    vaults = module(bicep, "keyvault")
    props = resource(vaults, "vault")["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True and props["softDeleteRetentionInDays"] >= 7
    assert props["enablePurgeProtection"] is True
    assert "accessPolicies" not in props
    assert props["enabledForTemplateDeployment"] is False
    assert (
        bicep["main.bicep"]["modules"]["keyVault"]["config"]["params"]["vaultName"] == "kv-${resourceToken}"
    )
    # 'kv-' + the 13-character uniqueString fits Key Vault's 24-character limit.
    assert decorators(vaults, "vaultName")["max_length"] == 24


def test_secrets_are_generated_on_the_first_deployment_only(bicep):
    vaults = module(bicep, "keyvault")
    secrets = resources_of_type(vaults, "Microsoft.KeyVault/vaults/secrets")
    assert set(secrets) == {"key", "previousKey"}
    for name, secret in secrets.items():
        assert secret["config"]["condition"] == "createSecrets", name
        config = secret["config"]["config"]
        assert config["parent"] == "vault"
        assert config["properties"]["value"] in ("initialKey", "initialPreviousKey")
        assert "secure" in decorators(vaults, config["properties"]["value"])
    main = bicep["main.bicep"]
    params = main["modules"]["keyVault"]["config"]["params"]
    assert params["createSecrets"] == "createPredictionIdKeys"
    for seed in ("predictionIdKeySeed", "predictionIdPreviousKeySeed"):
        assert "secure" in decorators(main, seed)
        assert main["parameters"][seed]["default"] == {"function": {"type": "new_guid"}}
    assert (params["initialKey"], params["initialPreviousKey"]) == (
        "predictionIdKeySeed",
        "predictionIdPreviousKeySeed",
    )
    assert "predictionIdKeySeed" not in json.dumps(main["outputs"])  # never echoed in an output


def test_only_the_app_identity_reads_the_secrets_of_that_vault(bicep):
    vaults = module(bicep, "keyvault")
    (assignment,) = resources_of_type(vaults, "Microsoft.Authorization/roleAssignments").values()
    config = assignment["config"]
    assert config["scope"] == "vault"  # this vault only, not the resource group
    role = config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert vaults["variables"][role]["value"] == KEY_VAULT_SECRETS_USER
    assert config["properties"]["principalId"] == "appPrincipalId"
    assert config["properties"]["principalType"] == "ServicePrincipal"


# --- ledger: tables, settings, retention ---------------------------------------------------------------


def test_ledger_tables_live_in_the_apps_storage_account(bicep):
    from serving import ledger

    storage = module(bicep, "storage")
    tables = resource(storage, "ledgerTables")
    assert tables["loop_type"]["detail"] == {"item_name": "table", "array_name": "ledgerTableNames"}
    assert tables["config"] == {"parent": "tableService", "name": "table"}
    assert resource(storage, "tableService")["parent"] == "storageAccount"
    names = bicep["main.bicep"]["modules"]["storage"]["config"]["params"]["ledgerTableNames"]
    assert sorted(names) == sorted([ledger.PREDICTIONS_TABLE, ledger.FEEDBACK_TABLE])
    endpoint = storage["outputs"]["tableEndpoint"]["value"]
    assert endpoint == "https://${storageAccount.name}.table.${environment().suffixes.storage}"
    assert not endpoint.endswith("/")


def test_ledger_settings_are_parameters_with_their_defaults(bicep):
    from serving import ledger

    settings = app_settings(bicep)
    assert settings[ledger.TABLE_ENDPOINT_SETTING] == "ledgerTableEndpoint"
    assert settings[ledger.CLIENT_ID_SETTING] == "identityClientId"
    for setting, param in (
        ("LEDGER_STORE_PREDICTIONS", "ledgerStorePredictions"),
        ("LEDGER_INCLUDE_TEXT", "ledgerIncludeText"),
    ):
        assert settings[setting]["operator"]["operands"] == {
            "condition": param,
            "true_value": "true",
            "false_value": "false",
        }
    assert settings["LEDGER_RETENTION_DAYS"]["function"]["parameters"] == {
        "value_to_convert": "ledgerRetentionDays"
    }
    assert "LEDGER_CONNECTION_STRING" not in settings  # identity-based: no account key anywhere
    main = bicep["main.bicep"]
    defaults = param_defaults(main)
    assert defaults["ledgerStorePredictions"] is True and defaults["ledgerIncludeText"] is True
    assert defaults["ledgerRetentionDays"] == 180
    app = main["modules"]["functionApp"]["config"]["params"]
    for param in ("ledgerStorePredictions", "ledgerIncludeText", "ledgerRetentionDays"):
        assert app[param] == param


def test_training_data_container_and_retraining_outputs(bicep):
    storage = module(bicep, "storage")
    container = resource(storage, "trainingDataContainer")
    assert container["parent"] == "blobService" and container["properties"]["publicAccess"] == "None"
    outputs = bicep["main.bicep"]["outputs"]
    assert outputs["ledgerTableEndpoint"]["value"] == "storage.outputs.tableEndpoint"
    assert "trainingDataContainerName" in outputs["trainingDataContainer"]["value"]


def test_radar_rules_defaults_severities_dimensions_and_time_ranges(bicep):
    defaults = param_defaults(bicep["main.bicep"])
    for name, value in RADAR_ALERT_DEFAULTS.items():
        assert defaults[name] == value, name
    assert defaults["alertWebhookUrl"] == "" and "secure" in decorators(
        bicep["main.bicep"], "alertWebhookUrl"
    )
    rules = traced_alert_rules(bicep)
    severities = {name: rules[name]["properties"]["severity"] for name in SHARED_QUERY | {"topic-spike": 0}}
    assert severities["safety-spike"] < severities["topic-spike"]
    for name in ("topic-spike", "safety-spike"):
        props = rules[name]["properties"]
        assert props["overrideQueryTimeRange"] == "<topicSpikeQueryTimeRange>"
        (criterion,) = props["criteria"]["allOf"]
        assert criterion["dimensions"] == [{"name": "topic", "operator": "Include", "values": ["*"]}]
    for name in ("wrong-predictions", "bad-buzz", "score-drift", "input-drift"):
        props = rules[name]["properties"]
        assert props["overrideQueryTimeRange"] is None and props["criteria"]["allOf"][0]["dimensions"] == []
    assert rules["score-drift"]["properties"]["severity"] > rules["bad-buzz"]["properties"]["severity"]


def test_the_deployed_score_drift_query_carries_the_baseline_histogram(bicep):
    queries = alert_queries(bicep, scoreBaselineHistogram=[0, 3, 120, 880, 1500, 900, 400, 90, 7, 0])
    assert "let baseline = dynamic([0,3,120,880,1500,900,400,90,7,0]);" in queries["score-drift"]
    assert "let safetyRule = true;" in queries["safety-spike"]
    assert "let safetyRule = false;" in queries["topic-spike"]


def test_the_webhook_receiver_exists_only_when_a_url_is_given(bicep):
    alerts = module(bicep, "alerts")
    group = alerts["resources"]["actionGroup"]["config"]
    for url, expected in (("", []), ("https://hooks.example/x", ["on-call-webhook"])):
        resolver = Resolver(alerts, INFRA / "modules" / "alerts.bicep", {"alertWebhookUrl": url})
        receivers = resolver.value(group["properties"]["webhookReceivers"])
        assert [r["name"] for r in receivers] == expected
        assert all(r["serviceUri"] == url and r["useCommonAlertSchema"] for r in receivers)
