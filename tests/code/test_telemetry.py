"""serving.telemetry without an exporter: the records it logs (names, dimensions, all strings), the text
rules, that it never raises, and what configure() does (or must not do) in a fresh process."""

from __future__ import annotations

import json
import logging

import pytest

from serving import telemetry
from tests.app_fixtures import run_app_in_subprocess

SCORED_DIMENSIONS = {"model_version", "texts", "negatives", "mean_negative_probability"}
FEEDBACK_DIMENSIONS = {
    "feedback_id",
    "prediction_id",
    "predicted_label",
    "negative_probability",
    "model_version",
    "matched_prediction",
}


class EventCapture(logging.Handler):
    """Keeps the records of the events logger (what the exporter would turn into customEvents)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[tuple[str, dict]]:
        found = []
        for record in self.records:
            name = getattr(record, telemetry.CUSTOM_EVENT_ATTRIBUTE, None)
            if name is None:
                continue
            reserved = set(vars(logging.makeLogRecord({}))) | {
                "message",
                "asctime",
                telemetry.CUSTOM_EVENT_ATTRIBUTE,
            }
            dimensions = {key: value for key, value in vars(record).items() if key not in reserved}
            found.append((name, dimensions))
        return found


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(telemetry.INCLUDE_TEXT_ENV, raising=False)
    handler = EventCapture()
    logger = logging.getLogger(telemetry.EVENTS_LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def wrong_feedback(**changes) -> dict:
    values = {
        "feedback_id": "f-1",
        "prediction_id": "p-1",
        "predicted_label": "negative",
        "negative_probability": 0.93,
        "model_version": "2026.11.23-1a2b3c4d",
        "text": "my bag was lost",
        "correct": False,
        "matched_prediction": True,
    }
    return values | changes


def test_event_names_are_the_contract_names():
    assert telemetry.SENTIMENT_SCORED == "SentimentScored"
    assert telemetry.WRONG_PREDICTION == "WrongPrediction"
    assert telemetry.PREDICTION_CONFIRMED == "PredictionConfirmed"
    assert telemetry.EVENT_NAMES == ("SentimentScored", "WrongPrediction", "PredictionConfirmed")


def test_scored_event_carries_the_counts_as_strings(captured: EventCapture):
    telemetry.record_scored(model_version="v1", texts=3, negatives=2, mean_negative_probability=0.6666666667)
    [(name, dimensions)] = captured.events()
    assert name == "SentimentScored"
    assert dimensions == {
        "model_version": "v1",
        "texts": "3",
        "negatives": "2",
        "mean_negative_probability": "0.666667",
    }
    assert captured.records[0].levelno == logging.INFO


def test_wrong_prediction_carries_every_dimension_and_the_text(captured: EventCapture):
    telemetry.record_feedback(**wrong_feedback())
    [(name, dimensions)] = captured.events()
    assert name == "WrongPrediction"
    assert set(dimensions) == FEEDBACK_DIMENSIONS | {"text"}
    assert dimensions["negative_probability"] == "0.93"
    assert dimensions["text"] == "my bag was lost"
    assert all(isinstance(value, str) for value in dimensions.values())


def test_text_is_cut_to_280_characters(captured: EventCapture):
    telemetry.record_feedback(**wrong_feedback(text="é" * 5000))
    [(_, dimensions)] = captured.events()
    assert dimensions["text"] == "é" * 280


@pytest.mark.parametrize("setting", ["false", "FALSE", "0", "no", "off"])
def test_text_is_left_out_when_the_setting_says_so(captured, monkeypatch, setting):
    monkeypatch.setenv(telemetry.INCLUDE_TEXT_ENV, setting)
    telemetry.record_feedback(**wrong_feedback())
    [(name, dimensions)] = captured.events()
    assert name == "WrongPrediction"
    assert "text" not in dimensions
    assert set(dimensions) == FEEDBACK_DIMENSIONS


@pytest.mark.parametrize("setting", ["true", "1", "", "yes"])
def test_text_is_kept_by_default_and_when_enabled(captured, monkeypatch, setting):
    monkeypatch.setenv(telemetry.INCLUDE_TEXT_ENV, setting)
    telemetry.record_feedback(**wrong_feedback())
    assert captured.events()[0][1]["text"] == "my bag was lost"


def test_confirmed_prediction_never_carries_the_text(captured: EventCapture):
    telemetry.record_feedback(**wrong_feedback(correct=True))
    [(name, dimensions)] = captured.events()
    assert name == "PredictionConfirmed"
    assert set(dimensions) == FEEDBACK_DIMENSIONS


def test_unknown_prediction_id_and_probability_are_left_out(captured: EventCapture):
    telemetry.record_feedback(**wrong_feedback(prediction_id=None, negative_probability=None))
    [(_, dimensions)] = captured.events()
    assert "prediction_id" not in dimensions
    assert "negative_probability" not in dimensions
    assert dimensions["feedback_id"] == "f-1"


def test_log_message_names_the_event_but_not_the_text(captured: EventCapture):
    telemetry.record_feedback(**wrong_feedback(text="secret tweet"))
    message = captured.records[0].getMessage()
    assert message.startswith("WrongPrediction ")
    assert "feedback_id=f-1" in message
    assert "secret tweet" not in message


def test_bad_values_are_swallowed_not_raised(captured: EventCapture):
    telemetry.record_scored(model_version="v", texts="many", negatives=1, mean_negative_probability=0.5)
    telemetry.record_feedback(**wrong_feedback(negative_probability="high"))
    assert captured.events() == []


def test_a_failing_log_handler_does_not_fail_the_caller(captured: EventCapture):
    class Broken(logging.Handler):
        def emit(self, record):
            raise RuntimeError("ingestion exploded")

    broken = Broken()
    logger = logging.getLogger(telemetry.EVENTS_LOGGER_NAME)
    logger.addHandler(broken)
    try:
        telemetry.record_scored(model_version="v", texts=1, negatives=0, mean_negative_probability=0.1)
    finally:
        logger.removeHandler(broken)
    assert len(captured.events()) == 1


def test_scored_requests_are_summed_per_window_and_model_version(captured, monkeypatch):
    monkeypatch.setenv(telemetry.SCORED_WINDOW_ENV, "60")
    for texts, negatives, mean in ((1, 1, 0.9), (3, 1, 0.4), (1000, 700, 0.65)):
        telemetry.record_scored(
            model_version="v1", texts=texts, negatives=negatives, mean_negative_probability=mean
        )
    telemetry.record_scored(model_version="v2", texts=2, negatives=0, mean_negative_probability=0.1)
    assert captured.events() == []  # nothing until the window ends
    telemetry.flush()
    events = dict((dimensions["model_version"], dimensions) for _, dimensions in captured.events())
    assert events["v1"]["texts"] == "1004" and events["v1"]["negatives"] == "702"
    weighted = (0.9 + 3 * 0.4 + 1000 * 0.65) / 1004
    assert float(events["v1"]["mean_negative_probability"]) == pytest.approx(weighted, abs=1e-6)
    assert events["v2"] == {
        "model_version": "v2",
        "texts": "2",
        "negatives": "0",
        "mean_negative_probability": "0.1",
    }
    telemetry.flush()
    assert len(captured.events()) == 2  # an empty window sends nothing


def test_a_window_is_sent_when_it_ends_without_another_request(captured, monkeypatch):
    import time

    monkeypatch.setenv(telemetry.SCORED_WINDOW_ENV, "0.2")
    for _ in range(50):
        telemetry.record_scored(model_version="v", texts=2, negatives=1, mean_negative_probability=0.5)
    deadline = time.monotonic() + 5
    while not captured.events() and time.monotonic() < deadline:
        time.sleep(0.05)
    [(name, dimensions)] = captured.events()
    assert name == "SentimentScored" and dimensions["texts"] == "100" and dimensions["negatives"] == "50"


def test_shadow_disagreements_are_summed_when_a_shadow_model_scores(captured, monkeypatch):
    monkeypatch.setenv(telemetry.SCORED_WINDOW_ENV, "60")
    telemetry.record_scored(
        model_version="v", texts=5, negatives=2, mean_negative_probability=0.5, shadow_disagreements=1
    )
    telemetry.record_scored(
        model_version="v", texts=5, negatives=2, mean_negative_probability=0.5, shadow_disagreements=2
    )
    telemetry.flush()
    [(_, dimensions)] = captured.events()
    assert dimensions["shadow_disagreements"] == "3"


def test_feedback_events_are_capped_per_minute_and_the_excess_is_reported(captured, monkeypatch, caplog):
    budget = telemetry._EventBudget(limit=5)
    monkeypatch.setattr(telemetry, "_feedback_budget", budget)
    now = [600.0]
    monkeypatch.setattr(telemetry.time, "monotonic", lambda: now[0])
    for index in range(8):
        telemetry.record_feedback(**wrong_feedback(feedback_id=f"f-{index}"))
    assert [d["feedback_id"] for _, d in captured.events()] == [f"f-{index}" for index in range(5)]
    now[0] += 60
    with caplog.at_level(logging.WARNING, logger=f"{telemetry.APP_LOGGER_NAME}.telemetry"):
        telemetry.record_feedback(**wrong_feedback(feedback_id="next-minute"))
    assert "3 feedback events over the limit of 5 a minute were not sent" in caplog.text
    assert captured.events()[-1][1]["feedback_id"] == "next-minute"


def test_flush_without_an_exporter_is_a_no_op():
    assert telemetry.flush() is True


PROBE = """
import json, sys
from serving import telemetry
first, second = telemetry.configure(), telemetry.configure()  # idempotent: the same answer twice
print(json.dumps({"exporting": second if first == second else "changed",
                  "exporter_loaded": "azure.monitor.opentelemetry" in sys.modules,
                  "otel_loaded": "opentelemetry.sdk" in sys.modules}))
"""


def run_probe(**env: str) -> dict:
    return run_app_in_subprocess(PROBE, timeout=60, **env)


def test_without_a_connection_string_nothing_is_configured_and_the_exporter_is_not_imported():
    assert run_probe() == {"exporting": False, "exporter_loaded": False, "otel_loaded": False}


WORKER_PROBE = """
import json, logging, sys
errors = []
class Keep(logging.Handler):
    def emit(self, record):
        errors.append(record.getMessage())
logging.getLogger("serving.telemetry").addHandler(Keep(logging.ERROR))
if sys.argv[-1] == "worker-configured":  # what the worker's configure_azure_monitor leaves behind
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    set_logger_provider(LoggerProvider())
from serving import telemetry
exporting = telemetry.configure()
print(json.dumps({"exporting": exporting, "errors": errors,
                  "exporter_loaded": "azure.monitor.opentelemetry" in sys.modules}))
"""
IN_AZURE = {
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
}


def test_in_azure_the_worker_owns_the_exporter_so_the_app_configures_nothing():
    probe = run_app_in_subprocess(
        WORKER_PROBE.replace("sys.argv[-1]", "'worker-configured'"), timeout=60, **IN_AZURE
    )
    assert probe == {"exporting": True, "errors": [], "exporter_loaded": False}


def test_in_azure_a_worker_that_set_up_no_exporter_is_reported_not_trusted():
    """The setting on but no logger provider (the worker's Azure Monitor set-up failed): events would
    vanish silently, so configure() says so at ERROR and reports that nothing is exported."""
    probe = run_app_in_subprocess(WORKER_PROBE, timeout=60, **IN_AZURE)
    assert probe["exporting"] is False
    assert probe["exporter_loaded"] is False  # still never configured twice by the app
    [error] = probe["errors"]
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is true" in error
    assert "no OpenTelemetry logger provider" in error


def test_drift_signals_are_summed_across_the_window(captured, monkeypatch):
    monkeypatch.setenv(telemetry.SCORED_WINDOW_ENV, "60")
    telemetry.record_scored(
        model_version="v",
        texts=3,
        negatives=2,
        mean_negative_probability=0.6,
        score_histogram=[1, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        topics={"baggage": [2, 2], "delay": [1, 0]},
        unknown_share=0.5,
        unknown_texts=2,
        empty_after_normalization=1,
    )
    telemetry.record_scored(
        model_version="v",
        texts=2,
        negatives=1,
        mean_negative_probability=0.5,
        score_histogram=[0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
        topics={"baggage": (1, 1)},
        unknown_share=0.2,
        empty_after_normalization=0,
    )
    telemetry.flush()
    [(_, dimensions)] = captured.events()
    assert json.loads(dimensions["score_histogram"]) == [1, 0, 0, 0, 1, 0, 0, 0, 1, 2]
    assert json.loads(dimensions["topics"]) == {"baggage": [3, 3], "delay": [1, 0]}
    # weighted by the texts each share was measured on: (0.5 x 2 + 0.2 x 2) / 4
    assert float(dimensions["unknown_share"]) == pytest.approx(0.35)
    assert dimensions["empty_after_normalization"] == "1"
    assert all(isinstance(value, str) for value in dimensions.values())


def test_callers_without_drift_signals_send_the_old_dimensions_only(captured, monkeypatch):
    monkeypatch.setenv(telemetry.SCORED_WINDOW_ENV, "60")
    telemetry.record_scored(model_version="v", texts=1, negatives=0, mean_negative_probability=0.2)
    telemetry.record_scored(
        model_version="v", texts=1, negatives=0, mean_negative_probability=0.2, unknown_share=None
    )
    telemetry.flush()
    [(_, dimensions)] = captured.events()
    assert set(dimensions) == {"model_version", "texts", "negatives", "mean_negative_probability"}


def test_a_malformed_histogram_is_dropped_not_raised(captured, monkeypatch):
    monkeypatch.setenv(telemetry.SCORED_WINDOW_ENV, "60")
    telemetry.record_scored(
        model_version="v", texts=1, negatives=0, mean_negative_probability=0.2, score_histogram=[1, 2]
    )
    telemetry.flush()
    assert captured.events() == []


def test_the_app_sends_the_drift_signals_of_its_predictions(monkeypatch):
    from serving.runtime import SentimentModel
    from tests.app_fixtures import model_path

    model = SentimentModel.load(model_path())
    predictions = model.predict(["lost my bag, delayed again", "...", "lovely crew"])
    signals = model.scored_signals(predictions)
    assert sum(signals["score_histogram"]) == 3 and signals["empty_after_normalization"] == 1
    assert signals["topics"]["baggage"] == [1, int(predictions[0].label == "negative")]
    assert set(signals["topics"]) == {"baggage", "delay", "crew"}
    assert signals["texts"] == 3 and signals["negatives"] == sum(p.label == "negative" for p in predictions)
    mean = sum(p.negative_probability for p in predictions) / 3
    assert signals["mean_negative_probability"] == pytest.approx(mean)
    # The committed model has the n-gram coverage outputs: the two non-empty texts have a share.
    assert signals["unknown_texts"] == 2 and 0 <= signals["unknown_share"] <= 1
