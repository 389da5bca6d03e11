"""host.json and the example local settings say what the deployed app and ``func start`` rely on."""

from __future__ import annotations

import json

from tests.app_fixtures import REPO_ROOT


def test_host_json_uses_bundle_v4_and_never_samples_custom_events():
    host = json.loads((REPO_ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    assert host["extensions"]["http"]["routePrefix"] == "api"
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    # Alerts count SentimentScored / WrongPrediction events: sampling must never drop them.
    assert sampling["isEnabled"] is False or "Event" in sampling["excludedTypes"].split(";")


def test_example_settings_name_the_runtime_storage_and_contract_settings():
    settings = json.loads((REPO_ROOT / "local.settings.example.json").read_text())
    values = settings["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["MODEL_PATH"] == "model/sentiment.onnx"
    assert values["FEEDBACK_INCLUDE_TEXT"] == "true"
    assert values["APPLICATIONINSIGHTS_CONNECTION_STRING"] == ""
    assert values["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "false"
    assert all(isinstance(value, str) for value in values.values())
    assert settings["IsEncrypted"] is False
