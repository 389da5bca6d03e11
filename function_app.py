"""Air Paradis tweet sentiment: the Azure Functions app (Python v2 programming model).

A thin HTTP layer: check the request (serving.http), score it (serving.runtime), record the business
event (serving.telemetry) and, when one is configured, the ledger rows (serving.ledger), answer JSON. The
model (and the optional shadow model) loads once, here, at import; if it cannot load the app still imports
and indexes, and ``health``/``predict`` answer 503 with the reason, because an import-time exception is
what Azure reports as "0 functions found".

Every route accepts every method and answers a wrong one with the API's own JSON 405, so the answer is the
same under ``func start``, in Azure and through ``devtools.local_host``.
"""

import functools
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import azure.functions as func

from serving import contract, ledger, telemetry
from serving.http import (
    ApiError,
    error_response,
    html_response,
    json_response,
    parse_feedback,
    parse_predict,
    read_json_object,
    require_method,
)
from serving.openapi import document
from serving.prediction_ids import PredictionIds
from serving.runtime import OverBudget, Prediction, SentimentModel, load_configured_model, load_shadow_model

UI_PAGE = Path(__file__).resolve().parent / "serving" / "static" / "ui.html"
PLACEHOLDER_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Air Paradis sentiment</title>"
    "<p>The test page is not installed. POST JSON to /api/predict.</p></html>"
)
# Wall-clock time one predict request may spend scoring: the largest legal body takes well under a second
# on one core, so passing this means the instance is overloaded, and the caller is told to retry.
REQUEST_BUDGET_S = 5.0
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

log = logging.getLogger(f"{telemetry.APP_LOGGER_NAME}.app")

if not telemetry.configure():
    log.info("custom events go to the log only (no Application Insights exporter in this process)")
MODEL_STATE = load_configured_model()
if MODEL_STATE.model is None:
    log.error("model unavailable: %s", MODEL_STATE.reason)
else:
    log.info("model %s loaded from %s", MODEL_STATE.model.version, MODEL_STATE.configured_path)
    if MODEL_STATE.cascade_reason:
        log.warning("answering with the n-gram model alone: %s", MODEL_STATE.cascade_reason)
SHADOW, _shadow_reason = load_shadow_model()
if _shadow_reason:
    log.error("%s; predict goes on without a shadow", _shadow_reason)
elif SHADOW is not None:
    log.info("shadow model %s loaded from %s", SHADOW.version, SHADOW.path)
PREDICTION_IDS = PredictionIds.from_settings()
# None without a ledger setting (azure.data.tables is then never imported).
LEDGER = ledger.from_settings()
# Labels are the served model's; without a model, the contract's defaults.
LABELS = tuple(MODEL_STATE.model.labels) if MODEL_STATE.model else contract.LABELS
OPENAPI_BODY = json_response(document(LABELS)).get_body()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


Handler = Callable[[func.HttpRequest], func.HttpResponse]


def answers_json_errors(handler: Handler) -> Handler:
    """Refused requests become their JSON error. Anything else is a bug: log it with its traceback and
    answer a JSON 503 that says to retry, never a 500 with a stack trace (the fuzz tests assert this
    path is never taken)."""

    @functools.wraps(handler)
    def endpoint(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except ApiError as error:
            return error_response(error)
        except Exception:
            log.exception("unexpected error in %s %s", req.method, handler.__name__)
            return error_response(
                ApiError(503, "service_unavailable", "the request could not be processed; retry later")
            )

    return endpoint


def _require_model() -> SentimentModel:
    if MODEL_STATE.model is None:
        raise ApiError(503, "model_unavailable", f"the model is not loaded: {MODEL_STATE.summary}")
    return MODEL_STATE.model


@app.function_name("predict")
@app.route(route="predict", methods=ALL_METHODS, auth_level=func.AuthLevel.FUNCTION)
@answers_json_errors
def predict(req: func.HttpRequest) -> func.HttpResponse:
    """Score one text (``text``) or a batch (``texts``); ``explain`` adds the driving terms."""
    require_method(req, "POST")
    model = _require_model()
    request = parse_predict(read_json_object(req))
    if request.explain and not model.explains:
        raise ApiError(
            400, "explanation_unavailable", "the served model has no explanation outputs; send explain: false"
        )
    try:
        predictions = model.predict(
            request.texts, explain=request.explain, deadline=time.monotonic() + REQUEST_BUDGET_S
        )
    except OverBudget:
        raise ApiError(
            503,
            "over_budget",
            f"scoring took over the {REQUEST_BUDGET_S:g} s a request may use; retry, or send fewer texts",
            (("Retry-After", "1"),),
        ) from None
    version = model.version
    ids = [PREDICTION_IDS.issue() for _ in predictions]
    answers = []
    for prediction_id, prediction in zip(ids, predictions, strict=True):
        answer = {
            "prediction_id": prediction_id,
            "label": prediction.label,
            "negative_probability": prediction.negative_probability,
            "model_version": version,
            "topics": list(prediction.topics),
            "encoder": prediction.encoder,
        }
        if prediction.ngram_negative_probability is not None:
            answer["ngram_negative_probability"] = prediction.ngram_negative_probability
        if prediction.explanation is not None:
            answer["explanation"] = prediction.explanation
        answers.append(answer)
    if LEDGER is not None:
        scored = [
            ledger.ScoredText(prediction_id, p.label, p.negative_probability, text)
            for prediction_id, p, text in zip(ids, predictions, request.texts, strict=True)
        ]
        LEDGER.record_predictions(scored, version, [p.topics for p in predictions])
    telemetry.record_scored(
        model_version=version,
        shadow_disagreements=_shadow_disagreements(model, request.texts, predictions),
        **model.scored_signals(predictions),
    )
    return json_response({"model_version": version, "predictions": answers} if request.batch else answers[0])


def _shadow_disagreements(
    live: SentimentModel, texts: list[str], predictions: list[Prediction]
) -> int | None:
    """Texts on which the shadow model (if any) gives the other label; None without one or when it fails
    (it never fails the request)."""
    if SHADOW is None:
        return None
    try:
        # Labels only: the shadow's topics would be the live model's (same lexicon, same texts).
        shadow = SHADOW.predict(texts, deadline=time.monotonic() + REQUEST_BUDGET_S, match_topics=False)
    except Exception:
        log.warning("the shadow model failed on a request", exc_info=True)
        return None
    return sum(
        (a.label == live.labels[0]) != (b.label == SHADOW.labels[0])
        for a, b in zip(predictions, shadow, strict=True)
    )


@app.function_name("feedback")
@app.route(route="feedback", methods=ALL_METHODS, auth_level=func.AuthLevel.FUNCTION)
@answers_json_errors
def feedback(req: func.HttpRequest) -> func.HttpResponse:
    """Record whether a prediction was right (WrongPrediction / PredictionConfirmed); with a ledger, its
    row is written (joined to the stored prediction) before the answer."""
    require_method(req, "POST")
    request = parse_feedback(read_json_object(req), LABELS)
    feedback_id = uuid.uuid4().hex
    signed = PREDICTION_IDS.issued(request.prediction_id)
    record = ledger.FeedbackRecord(
        request.predicted_label,
        request.negative_probability,
        MODEL_STATE.model.version if MODEL_STATE.model else "unavailable",
        signed,
    )
    unavailable = False
    if LEDGER is not None:
        try:
            record = LEDGER.record_feedback(
                feedback_id=feedback_id,
                prediction_id=request.prediction_id,
                signed=signed,
                text=request.text,
                correct=request.correct,
                claimed=record,
                labels=LABELS,
            )
        except ledger.LedgerUnavailable as error:
            record, unavailable = error.record or record, True
    telemetry.record_feedback(
        feedback_id=feedback_id,
        prediction_id=request.prediction_id,
        predicted_label=record.predicted_label,
        negative_probability=record.negative_probability,
        model_version=record.model_version,
        text=request.text,
        correct=request.correct,
        matched_prediction=record.matched_prediction,
    )
    if unavailable:
        raise ApiError(
            503,
            "ledger_unavailable",
            "the feedback could not be stored durably (storage unreachable); send it again later",
            (("Retry-After", str(ledger.RETRY_AFTER_S)),),
        )
    return json_response(
        {"feedback_id": feedback_id, "recorded": True, "matched_prediction": record.matched_prediction}, 202
    )


@app.function_name("health")
@app.route(route="health", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@answers_json_errors
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness and model identity; 503 with a short reason when the model failed to load (the full one,
    with paths and library messages, is in the log only: this route is anonymous)."""
    require_method(req, "GET")
    if MODEL_STATE.model is None:
        return json_response(
            {
                "status": "unavailable",
                "model_version": None,
                "model_loaded": False,
                "reason": MODEL_STATE.summary,
            },
            503,
        )
    model = MODEL_STATE.model
    return json_response(
        {
            "status": "ok",
            "model_version": model.version,
            "model_loaded": True,
            "threshold": model.threshold,
            "labels": list(model.labels),
            "encoder": "on" if model.cascade is not None else "off",
        }
    )


@app.function_name("ui")
@app.route(route="ui", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@answers_json_errors
def ui(req: func.HttpRequest) -> func.HttpResponse:
    """The self-contained test page, under a Content-Security-Policy pinned to its own inline code."""
    require_method(req, "GET")
    try:
        page = UI_PAGE.read_text(encoding="utf-8")
    except FileNotFoundError:
        page = PLACEHOLDER_PAGE
    return html_response(page)


@app.function_name("openapi")
@app.route(route="openapi.json", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@answers_json_errors
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI 3.1 description of these routes."""
    require_method(req, "GET")
    return func.HttpResponse(OPENAPI_BODY, mimetype="application/json", charset="utf-8")
