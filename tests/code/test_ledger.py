"""The prediction and feedback ledger against a real Table Storage (Azurite on loopback): the rows and their
fields, the server-side join, storage outages, the bounded queue, the flush at exit and the loss on a crash.

The in-process tests swap ``function_app.LEDGER`` for a ledger on the test emulator (the app reads it at
each request); the start-up wiring from the settings is tested in fresh interpreters.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from serving import ledger
from tests.app_fixtures import (
    REPO_ROOT,
    assert_json_error,
    assert_matches_document,
    call_function,
    openapi_document,  # noqa: F401 (fixture)
    registered_functions,  # noqa: F401 (fixture)
    run_app_in_subprocess,
)
from tests.azurite import Azurite, azurite, azurite_server, free_port  # noqa: F401 (fixtures)

EVENTS_LOGGER = "air_paradis.events"
FEEDBACK_FIELDS = {
    "PartitionKey",
    "RowKey",
    "prediction_id",
    "predicted_label",
    "correct",
    "true_label",
    "negative_probability",
    "model_version",
    "matched_prediction",
    "received_at",
}
PREDICTION_FIELDS = {
    "PartitionKey",
    "RowKey",
    "label",
    "negative_probability",
    "model_version",
    "topics",
    "text",
    "scored_at",
}


@pytest.fixture(scope="module")
def fns(registered_functions):  # noqa: F811
    return registered_functions


@pytest.fixture
def app_ledger(azurite: Azurite, monkeypatch) -> Iterator[ledger.Ledger]:  # noqa: F811
    """A ledger on the (emptied) emulator, in place of the app's own for this test."""
    import function_app

    azurite.delete_tables()
    settings = ledger.LedgerSettings(azurite.connection_string, None, None, True, True)
    instance = ledger.Ledger(ledger.connect(settings))
    monkeypatch.setattr(function_app, "LEDGER", instance)
    yield instance
    instance.close(timeout_s=5)


def rows(azurite: Azurite, table: str) -> dict[str, dict]:  # noqa: F811
    """Every row of ``table`` by RowKey (empty when the table does not exist)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableServiceClient

    client = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(table)
    try:
        return {entity["RowKey"]: dict(entity) for entity in client.list_entities()}
    except ResourceNotFoundError:
        return {}


def _events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "microsoft.custom_event.name", None) == name]


def _utc_day() -> str:
    return time.strftime("%Y%m%d", time.gmtime())


# ------------------------------------------------------------------------------------------ settings
def test_settings_need_a_connection_setting():
    assert ledger.LedgerSettings.from_environ({}) is None
    assert ledger.LedgerSettings.from_environ({"LEDGER_STORE_PREDICTIONS": "true"}) is None
    by_string = ledger.LedgerSettings.from_environ(
        {"LEDGER_CONNECTION_STRING": "UseDevelopmentStorage=true", "LEDGER_TABLE_ENDPOINT": "https://x"}
    )
    assert by_string is not None and by_string.connection_string == "UseDevelopmentStorage=true"
    assert by_string.store_predictions and by_string.include_text
    by_identity = ledger.LedgerSettings.from_environ(
        {
            "LEDGER_TABLE_ENDPOINT": "https://acct.table.core.windows.net/",
            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
            "LEDGER_STORE_PREDICTIONS": "false",
            "LEDGER_INCLUDE_TEXT": "0",
        }
    )
    assert by_identity == ledger.LedgerSettings(
        None, "https://acct.table.core.windows.net", "00000000-0000-0000-0000-000000000001", False, False
    )


def test_the_managed_identity_client_is_built_without_a_network_call():
    settings = ledger.LedgerSettings(
        None, "https://acct.table.core.windows.net", "00000000-0000-0000-0000-000000000001", True, True
    )
    service = ledger.connect(settings)
    assert service.account_name == "acct"
    assert type(service.credential).__name__ == "ManagedIdentityCredential"


IMPORTS_SCRIPT = """
import json, sys
import azure.functions as func
import function_app
predict = {f.get_function_name(): f for f in function_app.app.get_functions()}
def call(name, body):
    req = func.HttpRequest(method="POST", url="http://h/api/" + name,
                           headers={"Content-Type": "application/json"}, body=json.dumps(body).encode())
    return predict[name].get_user_function()(req)
answer = call("predict", {"text": "lost my bag again"})
feedback = call("feedback", {"prediction_id": json.loads(answer.get_body())["prediction_id"],
                             "text": "lost my bag again", "predicted_label": "negative", "correct": True})
print(json.dumps({
    "ledger": function_app.LEDGER is not None,
    "predict": answer.status_code,
    "feedback": feedback.status_code,
    "feedback_body": json.loads(feedback.get_body()),
    "tables": "azure.data.tables" in sys.modules,
    "identity": "azure.identity" in sys.modules,
    "core": "azure.core" in sys.modules,
    "table_http": "serving.table_http" in sys.modules,
}))
"""


def test_without_a_ledger_setting_storage_libraries_are_never_imported():
    env_free = {name: "" for name in ("LEDGER_CONNECTION_STRING", "LEDGER_TABLE_ENDPOINT")}
    found = run_app_in_subprocess(IMPORTS_SCRIPT, **env_free)
    assert found["ledger"] is False
    assert (found["predict"], found["feedback"]) == (200, 202)
    assert found["feedback_body"]["matched_prediction"] is True  # signature only, as without a ledger
    assert not found["tables"] and not found["identity"] and not found["core"] and not found["table_http"]


def test_a_ledger_setting_loads_the_ledger_and_an_unreachable_store_fails_only_feedback():
    """Storage down from the start (nothing listens on the port): the app still imports, predict answers
    200, feedback 503 ledger_unavailable."""
    port = free_port()
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={'a' * 88};"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    found = run_app_in_subprocess(IMPORTS_SCRIPT, LEDGER_CONNECTION_STRING=connection)
    assert found["ledger"] is True and found["tables"] and found["table_http"]
    assert not found["identity"], "a connection string needs no identity library"
    assert (found["predict"], found["feedback"]) == (200, 503)
    assert found["feedback_body"]["error"]["code"] == "ledger_unavailable"


# ------------------------------------------------------------------------------------------ feedback rows
def test_each_feedback_is_one_row_with_exact_fields(fns, app_ledger, azurite, caplog):  # noqa: F811
    import function_app

    version = function_app.MODEL_STATE.model.version
    texts = [f"flight {i} was {'late' if i % 2 else 'great'}" for i in range(12)]
    predictions = call_function(fns, "predict", "POST", {"texts": texts}).json()["predictions"]
    assert app_ledger.flush(30)
    sent = []
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        for i, (text, prediction) in enumerate(zip(texts, predictions, strict=True)):
            body = {
                "prediction_id": prediction["prediction_id"],
                "text": text,
                "predicted_label": prediction["label"],
                "negative_probability": prediction["negative_probability"],
                "correct": i % 3 != 0,
            }
            answer = call_function(fns, "feedback", "POST", body)
            assert answer.status == 202, answer.body
            assert_matches_document(function_app.document(function_app.LABELS), "/feedback", "POST", answer)
            assert answer.json()["recorded"] is True and answer.json()["matched_prediction"] is True
            sent.append((answer.json()["feedback_id"], body, prediction))
    stored = rows(azurite, "feedback")
    assert set(stored) == {feedback_id for feedback_id, _, _ in sent}
    other = {"negative": "positive", "positive": "negative"}
    for feedback_id, body, prediction in sent:
        row = stored[feedback_id]
        wrong = not body["correct"]
        assert set(row) == FEEDBACK_FIELDS | {"text"}, row  # corrections and confirmations keep it
        assert row["PartitionKey"] == _utc_day()
        assert row["prediction_id"] == prediction["prediction_id"]
        assert row["predicted_label"] == prediction["label"]
        assert row["correct"] is body["correct"]
        assert row["true_label"] == (other[prediction["label"]] if wrong else prediction["label"])
        assert row["negative_probability"] == pytest.approx(prediction["negative_probability"], abs=1e-12)
        assert row["model_version"] == version
        assert row["matched_prediction"] is True
        assert row["received_at"].endswith("Z") and row["received_at"][:10] == time.strftime(
            "%Y-%m-%d", time.gmtime()
        )
        assert row["text"] == body["text"]
    assert len(_events(caplog, "WrongPrediction")) + len(_events(caplog, "PredictionConfirmed")) == len(sent)


def test_the_join_uses_the_stored_prediction_not_the_clients_copy(fns, app_ledger, azurite, caplog):  # noqa: F811
    import function_app

    answer = call_function(fns, "predict", "POST", {"text": "they lost my bag, worst airline ever"}).json()
    assert app_ledger.flush(30)
    stored = rows(azurite, "predictions")[answer["prediction_id"]]
    assert set(stored) == PREDICTION_FIELDS
    assert stored["label"] == answer["label"] and json.loads(stored["topics"]) == answer["topics"]
    lie = {"negative": "positive", "positive": "negative"}[answer["label"]]
    signed_unknown = function_app.PREDICTION_IDS.issue()  # signed here, never scored
    forged = "f" * 56  # right shape, wrong signature: never looked up, even when a row carries it
    table = app_ledger.service.get_table_client("predictions")
    table.upsert_entity(
        {"PartitionKey": _utc_day(), "RowKey": forged, "label": lie, "negative_probability": 0.5,
         "model_version": "forged", "topics": "[]", "scored_at": "x"}
    )  # fmt: skip
    body = {"text": "lost my bag", "predicted_label": lie, "negative_probability": 0.01, "correct": False}
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        results = {
            name: call_function(fns, "feedback", "POST", {**body, "prediction_id": pid}).json()
            for name, pid in (
                ("stored", answer["prediction_id"]),
                ("unknown", signed_unknown),
                ("forged", forged),
            )
        }
    assert {name: r["matched_prediction"] for name, r in results.items()} == {
        "stored": True,
        "unknown": False,
        "forged": False,
    }
    feedback_rows = rows(azurite, "feedback")
    matched = feedback_rows[results["stored"]["feedback_id"]]
    assert matched["predicted_label"] == answer["label"]
    assert matched["negative_probability"] == pytest.approx(answer["negative_probability"], abs=1e-12)
    assert matched["model_version"] == answer["model_version"]
    assert matched["true_label"] == lie  # correct: false on what the service really said
    for name in ("unknown", "forged"):
        row = feedback_rows[results[name]["feedback_id"]]
        assert (row["predicted_label"], row["negative_probability"]) == (lie, 0.01)
        assert row["model_version"] == function_app.MODEL_STATE.model.version
        assert row["matched_prediction"] is False
    events = {e.feedback_id: e for e in _events(caplog, "WrongPrediction")}
    event = events[results["stored"]["feedback_id"]]
    assert (event.predicted_label, event.matched_prediction) == (answer["label"], "true")
    assert float(event.negative_probability) == pytest.approx(answer["negative_probability"], abs=1e-6)
    assert events[results["forged"]["feedback_id"]].predicted_label == lie


def test_a_prediction_still_queued_is_joined(fns, app_ledger, azurite, monkeypatch):  # noqa: F811
    """Feedback that arrives before the writer stored the row still finds it (in this process's queue)."""
    release = threading.Event()
    original = app_ledger._write_batch
    monkeypatch.setattr(app_ledger, "_write_batch", lambda batch: release.wait(30) and original(batch))
    answer = call_function(fns, "predict", "POST", {"text": "delayed for five hours"}).json()
    assert app_ledger.pending == 1
    body = {"prediction_id": answer["prediction_id"], "text": "x", "predicted_label": "positive"}
    result = call_function(fns, "feedback", "POST", {**body, "correct": True}).json()
    release.set()
    assert result["matched_prediction"] is True
    assert rows(azurite, "feedback")[result["feedback_id"]]["predicted_label"] == answer["label"]
    assert app_ledger.flush(30) and answer["prediction_id"] in rows(azurite, "predictions")


def test_without_stored_predictions_a_valid_signature_matches(fns, app_ledger, azurite, monkeypatch):  # noqa: F811
    monkeypatch.setattr(app_ledger, "store_predictions", False)
    monkeypatch.setattr(app_ledger, "include_text", False)
    answer = call_function(fns, "predict", "POST", {"text": "great crew"}).json()
    body = {"prediction_id": answer["prediction_id"], "text": "great crew", "predicted_label": "negative"}
    result = call_function(fns, "feedback", "POST", {**body, "correct": False}).json()
    assert result["matched_prediction"] is True
    assert app_ledger.flush(5) and rows(azurite, "predictions") == {}
    row = rows(azurite, "feedback")[result["feedback_id"]]
    assert row["predicted_label"] == "negative" and "text" not in row  # LEDGER_INCLUDE_TEXT=false


# ------------------------------------------------------------------------------------------ outages
def test_storage_down_feedback_503_predict_unaffected_then_recovers(
    fns,
    app_ledger,
    azurite,  # noqa: F811
    caplog,
    openapi_document,  # noqa: F811
):
    import function_app

    body = {"text": "lost my bag", "predicted_label": "negative", "correct": False}
    assert call_function(fns, "feedback", "POST", body).status == 202
    azurite.stop()
    caplog.clear()
    try:
        with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
            started = time.monotonic()
            answers = [
                call_function(fns, "feedback", "POST", {**body, "text": f"down {i}"}) for i in range(5)
            ]
            elapsed = time.monotonic() - started
            predicted = [call_function(fns, "predict", "POST", {"texts": ["a", "b"]}) for _ in range(5)]
        for answer in answers:
            assert_json_error(answer, 503, "ledger_unavailable")
            assert int(answer.headers["retry-after"]) >= 1
            assert_matches_document(openapi_document, "/feedback", "POST", answer)
        assert elapsed < 10, f"5 refused feedbacks took {elapsed:.1f} s"
        assert [p.status for p in predicted] == [200] * 5
        texts = [e.text for e in _events(caplog, "WrongPrediction")]
        assert texts == [f"down {i}" for i in range(5)], "the event is emitted even when the row is not"
    finally:
        azurite.start()  # in-memory: it comes back empty, and the tables are created again
    deadline = time.monotonic() + 15
    while True:
        answer = call_function(fns, "feedback", "POST", {**body, "text": "back"})
        if answer.status == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer.status == 202, answer.body
    assert app_ledger.flush(30)
    assert app_ledger.written + app_ledger.dropped_failed >= 10
    assert list(rows(azurite, "feedback")) == [answer.json()["feedback_id"]]
    assert function_app.LEDGER is app_ledger


def test_a_full_queue_drops_new_rows_and_counts_them(azurite, caplog):  # noqa: F811
    """Storage unreachable and a queue of 50: 50 rows wait, the next 70 are dropped at once (predict never
    waits), and the waiting ones are dropped after the bounded retries, both counted in the log."""
    port = free_port()
    dead = azurite.connection_string.replace(str(azurite.port), str(port))
    instance = ledger.Ledger(
        ledger.connect(ledger.LedgerSettings(dead, None, None, True, True)), queue_rows=50
    )
    scored = [ledger.ScoredText(f"id{i:04d}", "negative", 0.9, "late again") for i in range(120)]
    with caplog.at_level(logging.WARNING, logger="air_paradis.ledger"):
        started = time.monotonic()
        assert instance.record_predictions(scored[:50], "v1") == 50
        assert instance.record_predictions(scored[50:], "v1") == 0
        assert time.monotonic() - started < 0.5
        assert instance.dropped_full == 70 and instance.pending == 50
        assert instance.flush(60), "the retries are bounded"
    assert (instance.written, instance.dropped_failed, instance.pending) == (0, 50, 0)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "70 prediction rows dropped" in messages and "50 prediction rows dropped after" in messages


def test_batches_respect_the_transaction_limits(app_ledger, azurite):  # noqa: F811
    """Rows of two days, interleaved, and long texts outside the BMP: every transaction holds one
    partition, at most 100 rows and under 4 MiB, and every row lands with its text."""
    sizes = []
    original = app_ledger._write_batch

    def spy(batch):
        sizes.append(
            (len(batch), {row.partition for _, row in batch}, sum(len(row.body) for _, row in batch))
        )
        return original(batch)

    app_ledger._write_batch = spy
    long_text = "\U0001f621" * 5000
    scored = [ledger.ScoredText(f"a{i:05d}", "negative", 0.5, long_text) for i in range(150)]
    scored += [ledger.ScoredText(f"b{i:05d}", "positive", 0.1, "ok") for i in range(250)]
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with app_ledger._cond:  # queue everything before the writer takes a batch; every other row "yesterday"
        for i, item in enumerate(scored):
            app_ledger.record_predictions([item], "v1", at=yesterday if i % 2 else None)
    assert app_ledger.flush(60)
    assert app_ledger.written == 400 and app_ledger.dropped_failed == 0
    assert all(n <= 100 and len(days) == 1 and size < 4 * 2**20 for n, days, size in sizes), sizes
    assert max(size for _, _, size in sizes) > 2**20, "long texts make large batches (the case tested)"
    stored = rows(azurite, "predictions")
    assert len(stored) == 400 and stored["a00000"]["text"] == long_text
    assert {e["PartitionKey"] for e in stored.values()} == {
        ledger.utc_day(datetime.now(UTC)),
        ledger.utc_day(yesterday),
    }


# -------------------------------------------------------------------------------- volume, exit, crash
@pytest.mark.slow
def test_ten_thousand_predictions_are_all_stored(fns, app_ledger, azurite):  # noqa: F811
    ids = []
    for request in range(100):
        texts = [f"request {request} text {i} delayed again" for i in range(100)]
        answer = call_function(fns, "predict", "POST", {"texts": texts})
        assert answer.status == 200
        ids += [p["prediction_id"] for p in answer.json()["predictions"]]
    assert app_ledger.flush(120)
    assert (app_ledger.written, app_ledger.dropped_full, app_ledger.dropped_failed) == (10_000, 0, 0)
    stored = rows(azurite, "predictions")
    assert set(stored) == set(ids)
    assert stored[ids[-1]]["text"] == "request 99 text 99 delayed again"


DRIVER = """
import json, sys
import azure.functions as func
import function_app
predict = {f.get_function_name(): f for f in function_app.app.get_functions()}["predict"].get_user_function()
requests, per_request = int(sys.argv[1]), int(sys.argv[2])
for r in range(requests):
    body = json.dumps({"texts": [f"burst {r} {i} my flight is delayed" for i in range(per_request)]}).encode()
    answer = predict(func.HttpRequest(method="POST", url="http://h/api/predict",
                                      headers={"Content-Type": "application/json"}, body=body))
    ids = [p["prediction_id"] for p in json.loads(answer.get_body())["predictions"]]
    # after the answer: these ids are queued (or counted as dropped); "pending" bounds what a crash from
    # here on can lose of the rows queued so far
    state = {"ids": ids, "pending": function_app.LEDGER.pending, "dropped": function_app.LEDGER.dropped_full}
    sys.stdout.write(json.dumps(state) + "\\n")
    sys.stdout.flush()  # whole lines: a bare os.write to a pipe may write part of one
"""


def _driver(azurite: Azurite, requests: int, per_request: int) -> subprocess.Popen:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if "APPLICATIONINSIGHTS" not in k}
    env.update(PYTHONPATH=str(REPO_ROOT), LEDGER_CONNECTION_STRING=azurite.connection_string)
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(requests), str(per_request)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_rows_queued_at_exit_are_flushed(azurite):  # noqa: F811
    """The process ends right after its last answer, with no explicit flush: the exit hook writes the
    queue (10,000 rows)."""
    azurite.delete_tables()
    driver = _driver(azurite, 100, 100)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err[-3000:]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    ids = {pid for line in lines for pid in line["ids"]}
    assert len(ids) == 10_000
    assert set(rows(azurite, "predictions")) == ids


@pytest.mark.slow
def test_a_killed_process_loses_at_most_its_queue(azurite):  # noqa: F811
    """kill -9 in the middle of a predict burst: every answered prediction is stored except some of those
    still queued at the kill (and any dropped because the queue was full, counted). The driver prints,
    after each answer, its ids, the queue length and the drop count: the answered rows lost can only be
    rows queued at the last answer, so that length bounds the loss (and the queue is bounded by
    QUEUE_ROWS)."""
    azurite.delete_tables()
    driver = _driver(azurite, 100_000, 50)
    assert driver.stdout is not None
    lines = []
    while sum(len(line["ids"]) for line in lines) < 5_000:
        line = driver.stdout.readline()
        assert line, driver.stderr.read().decode()[-3000:] if driver.stderr else "driver ended"
        lines.append(json.loads(line))
    os.kill(driver.pid, signal.SIGKILL)
    # Read on through the same buffered reader: communicate() reads the pipe directly and would skip
    # what readline() has already buffered (the start of the next line).
    rest = driver.stdout.read()
    driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL
    # What it printed before dying: whole lines only (the kill may cut the last one short).
    lines += [json.loads(line) for line in rest.decode().splitlines(keepends=True) if line.endswith("\n")]
    answered = {pid for line in lines for pid in line["ids"]}
    stored = set(rows(azurite, "predictions"))
    lost = answered - stored
    bound, dropped = lines[-1]["pending"], lines[-1]["dropped"]
    print(
        f"kill -9 after {len(answered)} answered predictions: {len(answered & stored)} stored, "
        f"{len(lost)} lost; queue at the last answer {bound} (largest {max(x['pending'] for x in lines)}), "
        f"dropped as the queue was full {dropped}"
    )
    assert answered & stored, "the writer stores rows during the burst, not only at exit"
    assert len(lost) <= bound + dropped
    assert bound <= ledger.QUEUE_ROWS
