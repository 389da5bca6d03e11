"""The real Azure Monitor exporter, configured by serving.telemetry exactly as outside Azure, sending to a
loopback ingestion sink. Each scenario runs the app in a fresh process (the exporter is configured once
per process) through tests/telemetry_driver.py, which calls the app's registered functions."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.telemetry_sink import OFFLINE_ENV, IngestionSink
from serving import telemetry

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_FILE = REPO_ROOT / "model" / "sentiment.onnx"
EXPORTER_PROPERTIES = {"logger_name"}  # added by the exporter to every record it ships
SCORED_KEYS = {
    "model_version",
    "texts",
    "negatives",
    "mean_negative_probability",
    "score_histogram",
    "topics",
    "empty_after_normalization",
    "unknown_share",  # the committed model has the n-gram coverage outputs
    "encoder_texts",  # the committed cascade is loaded: its cost counts
    "encoder_skipped",
}
FEEDBACK_KEYS = {
    "feedback_id",
    "prediction_id",
    "predicted_label",
    "negative_probability",
    "model_version",
    "matched_prediction",
}


def process_env(sink: IngestionSink, storage: Path, **extra: str) -> dict[str, str]:
    """The environment of a process outside Azure whose telemetry goes to ``sink``; offline-storage
    files (retries) go under ``storage`` so scenarios never replay each other's envelopes."""
    env = {key: value for key, value in os.environ.items() if "APPLICATIONINSIGHTS" not in key}
    env.pop(telemetry.INCLUDE_TEXT_ENV, None)
    env.update(OFFLINE_ENV)
    env.update(APPLICATIONINSIGHTS_CONNECTION_STRING=sink.connection_string, TMPDIR=str(storage))
    env.update(extra)
    return env


def run_driver(sink: IngestionSink, storage: Path, *args: str, timeout: float = 120, **extra: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.telemetry_driver", *args],
        cwd=REPO_ROOT,
        env=process_env(sink, storage, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    if Path(os.environ.get("MODEL_PATH") or MODEL_FILE).is_file():
        assert outcome["via"] == "app", "the model is there: events must come from the app's functions"
    return outcome


def contract_properties(event: dict) -> dict:
    properties = event["properties"]
    assert all(isinstance(value, str) for value in properties.values()), properties
    assert properties.get("logger_name") == telemetry.EVENTS_LOGGER_NAME
    return {key: value for key, value in properties.items() if key not in EXPORTER_PROPERTIES}


def by_time(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda event: event["time"])


def test_predict_and_feedback_produce_exactly_the_contract_events(tmp_path: Path):
    with IngestionSink("ok") as sink:
        calls = "--predict 2 --batches 1 --batch-size 4 --wrong 1 --right 1 --text-padding 400 --keep --flush"
        outcome = run_driver(sink, tmp_path, *calls.split())
        events = sink.wait_for(5)
    assert outcome["failures"] == 0
    assert sorted(event["name"] for event in events) == sorted(
        ["SentimentScored"] * 3 + ["WrongPrediction", "PredictionConfirmed"]
    )

    scored = by_time([event for event in events if event["name"] == "SentimentScored"])
    for event, call in zip(scored, outcome["predict"], strict=True):
        answer = call["response"]
        rows = answer.get("predictions") or [answer]
        dimensions = contract_properties(event)
        assert set(dimensions) == SCORED_KEYS
        assert dimensions["model_version"] == answer["model_version"]
        assert dimensions["texts"] == str(len(rows))
        assert dimensions["negatives"] == str(sum(row["label"] == "negative" for row in rows))
        mean = sum(row["negative_probability"] for row in rows) / len(rows)
        assert float(dimensions["mean_negative_probability"]) == pytest.approx(mean, abs=1e-5)
        histogram = json.loads(dimensions["score_histogram"])
        assert len(histogram) == 10 and sum(histogram) == len(rows)
        expected_topics: dict[str, list[int]] = {}
        for row in rows:
            for topic in row["topics"]:
                pair = expected_topics.setdefault(topic, [0, 0])
                pair[0] += 1
                pair[1] += row["label"] == "negative"
        assert json.loads(dimensions["topics"]) == expected_topics

    version = outcome["predict"][0]["response"]["model_version"]
    for name, call in zip(("WrongPrediction", "PredictionConfirmed"), outcome["feedback"], strict=True):
        [event] = [event for event in events if event["name"] == name]
        request, answer = call["request"], call["response"]
        dimensions = contract_properties(event)
        expected = {
            "feedback_id": answer["feedback_id"],
            "prediction_id": request["prediction_id"],
            "predicted_label": request["predicted_label"],
            "negative_probability": dimensions["negative_probability"],
            "model_version": version,
            "matched_prediction": "true",  # the id came from the service's own predict answer
        }
        assert answer["matched_prediction"] is True
        assert float(dimensions["negative_probability"]) == pytest.approx(
            request["negative_probability"], abs=1e-6
        )
        if name == "WrongPrediction":
            expected["text"] = request["text"][:280]
            assert len(request["text"]) > 280
        assert dimensions == expected


def test_feedback_text_is_not_sent_when_disabled(tmp_path: Path):
    with IngestionSink("ok") as sink:
        outcome = run_driver(
            sink, tmp_path, "--wrong", "2", "--right", "1", "--flush", FEEDBACK_INCLUDE_TEXT="false"
        )
        events = sink.wait_for(3)
    assert outcome["failures"] == 0
    assert sorted(event["name"] for event in events) == [
        "PredictionConfirmed",
        "WrongPrediction",
        "WrongPrediction",
    ]
    assert all(set(contract_properties(event)) == FEEDBACK_KEYS for event in events)


def test_a_thousand_wrong_predictions_reach_ingestion_none_lost(tmp_path: Path):
    with IngestionSink("ok") as sink:
        outcome = run_driver(
            sink, tmp_path, "--wrong", "1000", "--keep", "--flush", FEEDBACK_EVENTS_PER_MINUTE="1000"
        )
        events = sink.wait_for(1000, "WrongPrediction")
    assert outcome["failures"] == 0
    sent = {call["response"]["feedback_id"] for call in outcome["feedback"]}
    received = [event["properties"]["feedback_id"] for event in events]
    assert len(sent) == 1000
    assert len(received) == 1000
    assert set(received) == sent


@pytest.mark.parametrize("mode", ["down", "500", "slow"])
def test_every_request_succeeds_while_ingestion_is_down_failing_or_slow(tmp_path: Path, mode: str):
    # Export every 100 ms so the failing ingestion is being called while requests are served.
    with IngestionSink(mode) as sink:
        calls = "--predict 300 --batches 50 --wrong 300 --right 100 --linger 1 --exit-now"
        outcome = run_driver(sink, tmp_path, *calls.split(), OTEL_BLRP_SCHEDULE_DELAY="100")
        attempts = sink.requests
    assert outcome["calls"] == 750
    assert outcome["failures"] == 0
    if mode != "down":
        assert attempts >= 1, "the exporter never reached the sink: the outage was not exercised"
    if mode == "500":
        assert sink.events() == []


@pytest.mark.slow
def test_slow_ingestion_delays_no_request_and_loses_no_event(tmp_path: Path):
    with IngestionSink("slow", delay=5.0) as sink:
        calls = "--wrong 600 --flush --exit-now"
        outcome = run_driver(sink, tmp_path, *calls.split(), OTEL_BLRP_SCHEDULE_DELAY="100")
        events = sink.wait_for(600, "WrongPrediction", timeout=30)
    assert outcome["failures"] == 0
    assert outcome["elapsed_s"] >= 5.0  # the flush waited for the sink...
    assert len(events) == 600  # ...and every event arrived


CONFIGURE_TWICE = """
import json, logging
from serving import telemetry
telemetry.configure()
telemetry.configure()
from opentelemetry._logs import get_logger_provider
from opentelemetry.instrumentation.logging.handler import LoggingHandler
first = id(get_logger_provider())
telemetry.configure()
handlers = [h for h in logging.getLogger(telemetry.APP_LOGGER_NAME).handlers if isinstance(h, LoggingHandler)]
root_handlers = [h for h in logging.getLogger().handlers if isinstance(h, LoggingHandler)]
telemetry.record_scored(model_version="v", texts=1, negatives=1, mean_negative_probability=0.9)
logging.getLogger(telemetry.APP_LOGGER_NAME + ".app").warning("app message")
logging.getLogger("urllib3").warning("library message")
import gc
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
[batch] = [o for o in gc.get_objects() if isinstance(o, BatchLogRecordProcessor)]
print(json.dumps({"handlers": len(handlers), "root_handlers": len(root_handlers),
                  "queue_size": batch._batch_processor._max_queue_size,
                  "same_provider": first == id(get_logger_provider()), "flushed": telemetry.flush()}))
"""


def run_snippet(code: str, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_configure_sets_up_the_exporter_once_and_ships_only_our_loggers(tmp_path: Path):
    with IngestionSink("ok") as sink:
        probe = run_snippet(CONFIGURE_TWICE, process_env(sink, tmp_path))
        envelopes = sink.envelopes
    assert probe == {
        "handlers": 1,
        "root_handlers": 0,
        "queue_size": int(telemetry.DEFAULT_QUEUE_SIZE),  # room for bursts while ingestion is slow
        "same_provider": True,
        "flushed": True,
    }
    events = [envelope for envelope in envelopes if envelope["data"]["baseType"] == "EventData"]
    messages = [
        envelope["data"]["baseData"]["message"]
        for envelope in envelopes
        if envelope["data"]["baseType"] == "MessageData"
    ]
    assert len(events) == 1  # one event recorded, one envelope: never exported twice
    assert messages == ["app message"]
    assert {envelope["tags"]["ai.cloud.role"] for envelope in envelopes} == {telemetry.DEFAULT_SERVICE_NAME}


ENTRA = """
import gc, json, os
from serving import telemetry
telemetry.configure()
from azure.identity import ManagedIdentityCredential
from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
[exporter] = [o for o in gc.get_objects() if isinstance(o, AzureMonitorLogExporter)]
credential = exporter._credential
settings = getattr(getattr(credential, "_credential", None), "_settings", None) or {}
found = {"credential": type(credential).__name__, "client_id": settings.get("client_id")}
print(json.dumps(found), flush=True)
os._exit(0)  # no token can be fetched offline: do not try to ship anything
"""


def test_entra_authentication_string_gives_the_exporter_a_managed_identity(tmp_path: Path):
    client_id = "11111111-2222-3333-4444-555555555555"
    sink = IngestionSink("down").start()
    env = process_env(
        sink, tmp_path, APPLICATIONINSIGHTS_AUTHENTICATION_STRING=f"Authorization=AAD;ClientId={client_id}"
    )
    probe = run_snippet(ENTRA, env)
    assert probe["credential"] == "ManagedIdentityCredential"
    assert probe["client_id"] == client_id


def post_track(sink: IngestionSink, body: bytes, **headers: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    connection.request(
        "POST", "/v2.1/track", body=body, headers={"Content-Type": "application/json", **headers}
    )
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_sink_answers_like_ingestion_for_json_gzip_and_failures():
    envelope = {"time": "2026-11-23T10:00:00Z", "data": {"baseType": "EventData", "baseData": {"name": "X"}}}
    with IngestionSink("ok") as sink:
        assert post_track(sink, json.dumps([envelope]).encode()) == (
            200,
            {"itemsReceived": 1, "itemsAccepted": 1, "errors": []},
        )
        zipped = gzip.compress((json.dumps(envelope) + "\n" + json.dumps(envelope)).encode())
        assert post_track(sink, zipped, **{"Content-Encoding": "gzip"})[1]["itemsAccepted"] == 2
        assert [event["name"] for event in sink.events()] == ["X", "X", "X"]
    with IngestionSink("500") as sink:
        assert post_track(sink, json.dumps([envelope]).encode())[0] == 500
        assert sink.envelopes == []
