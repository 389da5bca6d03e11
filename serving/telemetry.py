"""Business telemetry: the custom events that close the MLOps loop (see CONTRACT, "Telemetry").

Events are plain ``logging`` records carrying ``microsoft.custom_event.name``; the Azure Monitor
OpenTelemetry exporter turns them into Application Insights ``customEvents`` with every extra in
``customDimensions``. Without a connection string they only reach the log. Recording is an append to
the exporter's in-memory batch queue (a background thread ships it), so a slow, failing or absent
ingestion endpoint never delays or fails a request; any error here is swallowed.

Event and dimension names live here and only here: the alert queries and tests import them.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Event names (customEvents.name).
SENTIMENT_SCORED = "SentimentScored"
WRONG_PREDICTION = "WrongPrediction"
PREDICTION_CONFIRMED = "PredictionConfirmed"
EVENT_NAMES = (SENTIMENT_SCORED, WRONG_PREDICTION, PREDICTION_CONFIRMED)

# Dimension names (customDimensions keys; every value is a string).
MODEL_VERSION = "model_version"
TEXTS = "texts"
NEGATIVES = "negatives"
MEAN_NEGATIVE_PROBABILITY = "mean_negative_probability"
FEEDBACK_ID = "feedback_id"
PREDICTION_ID = "prediction_id"
PREDICTED_LABEL = "predicted_label"
NEGATIVE_PROBABILITY = "negative_probability"
TEXT = "text"
MATCHED_PREDICTION = "matched_prediction"
SHADOW_DISAGREEMENTS = "shadow_disagreements"
# Drift signals of SentimentScored (label-free: they need no feedback).
SCORE_HISTOGRAM = "score_histogram"  # JSON list of HISTOGRAM_BINS counts over [0, 1)
TOPICS = "topics"  # JSON object: topic -> [texts, negatives]
UNKNOWN_SHARE = "unknown_share"  # mean share of a text's n-grams the model does not know
EMPTY_AFTER_NORMALIZATION = "empty_after_normalization"  # texts with nothing left to score
# The cascade's cost: texts the encoder re-read, and uncertain texts past a request's quota.
ENCODER_TEXTS = "encoder_texts"
ENCODER_SKIPPED = "encoder_skipped"
HISTOGRAM_BINS = 10

# The attribute the exporter reads to make a log record a custom event.
CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name"
TEXT_MAX_CHARS = 280

# App logs under APP_LOGGER_NAME are exported with the events; nothing else is (not the root logger,
# not the libraries'). In Azure set PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME to the same name.
APP_LOGGER_NAME = "air_paradis"
EVENTS_LOGGER_NAME = f"{APP_LOGGER_NAME}.events"

# cloud_RoleName in Application Insights when the app exports by itself (OTEL_SERVICE_NAME wins).
DEFAULT_SERVICE_NAME = "air-paradis-sentiment"
CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
WORKER_TELEMETRY_ENV = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
INCLUDE_TEXT_ENV = "FEEDBACK_INCLUDE_TEXT"
# Larger than the SDK's 2,048 so a burst during an ingestion outage is buffered, not dropped.
QUEUE_SIZE_ENV = "OTEL_BLRP_MAX_QUEUE_SIZE"
DEFAULT_QUEUE_SIZE = "16384"
FEEDBACK_EVENTS_ENV = "FEEDBACK_EVENTS_PER_MINUTE"
DEFAULT_FEEDBACK_EVENTS_PER_MINUTE = 600
SCORED_WINDOW_ENV = "SENTIMENT_SCORED_WINDOW_SECONDS"
DEFAULT_SCORED_WINDOW_S = 60.0

_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
# Pipelines we do not want from the distro outside Azure: only our log records are exported.
_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)

_events = logging.getLogger(EVENTS_LOGGER_NAME)
_events.setLevel(logging.INFO)
_debug = logging.getLogger(__name__)
_app_log = logging.getLogger(f"{APP_LOGGER_NAME}.telemetry")  # exported with the app's logs
_lock = threading.Lock()
_state = {"configured": False, "exporting": False}


def _env_true(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in _FALSE_WORDS


def configure() -> bool:
    """Connect the events to Application Insights when this process must do it itself; True when events
    are exported (by this process or by the Functions worker), False when they reach the log only.

    Idempotent. In Azure the Functions worker already configured Azure Monitor
    (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true): configuring again would duplicate every event;
    if it did not (no logger provider installed), an error is logged and events stay log-only.
    Without APPLICATIONINSIGHTS_CONNECTION_STRING events stay log-only and the exporter (~0.5 s of
    imports) is never loaded. Never raises.
    """
    with _lock:
        if _state["configured"]:
            return _state["exporting"]
        _state["configured"] = True
        try:
            _state["exporting"] = _configure_exporter()
        except Exception:
            _debug.warning("Azure Monitor exporter not configured; events stay log-only", exc_info=True)
        # Registered after the exporter's own exit hook, so it runs before it (last in, first out): the
        # open window is emitted, then shipped.
        atexit.register(flush)
        return _state["exporting"]


def _configure_exporter() -> bool:
    if _env_true(WORKER_TELEMETRY_ENV):
        # The worker configures Azure Monitor before it imports the app; the setting alone proves nothing
        # (the distro may have failed to import or to configure), and events would silently vanish.
        if _provider_already_set():
            return True
        _debug.error(
            "%s is true but no OpenTelemetry logger provider is configured: the Functions worker did not "
            "set up Azure Monitor, so custom events reach the log only. Check the worker's startup log "
            "for an Azure Monitor error and that azure-monitor-opentelemetry is in the package.",
            WORKER_TELEMETRY_ENV,
        )
        return False
    if _provider_already_set():
        return True  # someone in this process configured OpenTelemetry logging already
    connection_string = os.environ.get(CONNECTION_STRING_ENV, "").strip()
    if not connection_string:
        return False
    os.environ.setdefault(QUEUE_SIZE_ENV, DEFAULT_QUEUE_SIZE)
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    # APPLICATIONINSIGHTS_AUTHENTICATION_STRING ("Authorization=AAD;ClientId=...") is read by the
    # exporter itself, which then authenticates with ManagedIdentityCredential(client_id=...).
    configure_azure_monitor(
        connection_string=connection_string,
        logger_name=APP_LOGGER_NAME,
        resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME}),
        disable_tracing=True,
        disable_metrics=True,
        enable_live_metrics=False,
        enable_performance_counters=False,
        instrumentation_options={name: {"enabled": False} for name in _INSTRUMENTATIONS},
    )
    sdk_logger = logging.getLogger("azure")
    if sdk_logger.level == logging.NOTSET:
        sdk_logger.setLevel(logging.WARNING)  # not every batch's "Transmission succeeded" and HTTP headers
    return True


def _provider_already_set() -> bool:
    """True when an OpenTelemetry SDK logger provider (what configure_azure_monitor installs) is the
    global one, rather than the API's default proxy or no-op provider, which drop every record."""
    if "opentelemetry.sdk._logs" not in sys.modules:
        return False  # nobody configured the SDK: do not import it just to find that out
    from opentelemetry._logs import get_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider

    return isinstance(get_logger_provider(), LoggerProvider)


def flush(timeout_millis: int = 30_000) -> bool:
    """Emit the open SentimentScored window and ship queued events now (tests, shutdown). Blocks up to
    the exporter's own timeouts."""
    try:
        _scored.flush()
        if "opentelemetry._logs" not in sys.modules:
            return True
        from opentelemetry._logs import get_logger_provider

        provider = get_logger_provider()
        force_flush = getattr(provider, "force_flush", None)
        return bool(force_flush(timeout_millis)) if force_flush else True
    except Exception:
        _debug.debug("telemetry flush failed", exc_info=True)
        return False


def _number(value: float) -> str:
    return repr(round(float(value), 6))


def _emit(name: str, dimensions: dict[str, str]) -> None:
    """The INFO record ``_events.info(...)`` would log, built directly: once per request, so the caller
    lookup that ``Logger.info`` does is skipped (the record names this function as its origin)."""
    if not _events.isEnabledFor(logging.INFO):
        return
    summary = " ".join(f"{key}={value}" for key, value in dimensions.items() if key != TEXT)
    record = _events.makeRecord(
        _events.name,
        logging.INFO,
        __file__,
        _EMIT_LINE,
        "%s %s",
        (name, summary),
        None,
        "_emit",
        {CUSTOM_EVENT_ATTRIBUTE: name, **dimensions},
    )
    _events.handle(record)


_EMIT_LINE = _emit.__code__.co_firstlineno


class _Sums:
    """One model version's SentimentScored counts in the open window (see ``_ScoredWindow``)."""

    __slots__ = (
        "empty",
        "encoder",
        "histogram",
        "negatives",
        "probability_sum",
        "shadow",
        "texts",
        "topics",
        "unknown_sum",
        "unknown_texts",
    )

    def __init__(self) -> None:
        self.texts = 0
        self.negatives = 0
        self.probability_sum = 0.0
        self.shadow = -1  # -1: no request of the window had a shadow model
        self.histogram: list[int] | None = None
        self.topics: dict[str, list[int]] | None = None
        self.unknown_sum = 0.0
        self.unknown_texts = 0
        self.empty = -1  # -1: no request of the window counted empty texts
        self.encoder: tuple[int, int] | None = None  # (re-read, skipped); None: no cascade in the window

    def add(self, scored: _Scored) -> None:
        self.texts += scored.texts
        self.negatives += scored.negatives
        self.probability_sum += scored.probability_sum
        if scored.shadow is not None:
            self.shadow = max(self.shadow, 0) + scored.shadow
        if scored.histogram is not None:
            if self.histogram is None:
                self.histogram = [0] * HISTOGRAM_BINS
            for index, count in enumerate(scored.histogram[:HISTOGRAM_BINS]):
                self.histogram[index] += count
        if scored.topics is not None:
            if self.topics is None:
                self.topics = {}
            for topic, (texts, negatives) in scored.topics.items():
                pair = self.topics.setdefault(topic, [0, 0])
                pair[0] += texts
                pair[1] += negatives
        if scored.unknown_share is not None and scored.unknown_texts > 0:
            self.unknown_sum += scored.unknown_share * scored.unknown_texts
            self.unknown_texts += scored.unknown_texts
        if scored.empty is not None:
            self.empty = max(self.empty, 0) + scored.empty
        if scored.encoder is not None:
            used, skipped = self.encoder or (0, 0)
            self.encoder = (used + scored.encoder[0], skipped + scored.encoder[1])


@dataclass(slots=True)
class _Scored:
    """One request's contribution, checked and converted once (``record_scored``)."""

    texts: int
    negatives: int
    probability_sum: float
    shadow: int | None
    histogram: list[int] | None = None
    topics: dict[str, tuple[int, int]] | None = None
    unknown_share: float | None = None
    unknown_texts: int = 0
    empty: int | None = None
    encoder: tuple[int, int] | None = None


class _ScoredWindow:
    """Sums SentimentScored per model version over a window of ``SENTIMENT_SCORED_WINDOW_SECONDS``
    (default 60; 0 = one event per request), so the event volume per instance is bounded whatever the
    traffic: at most one SentimentScored per model version per window. Counts are summed, so the alert
    queries (sums of texts, negatives, histogram bins, topic pairs) read the same; the mean probability
    and the unknown share are weighted by texts. Flushed when the window ends (by the next request or a
    timer), by ``flush()`` and at exit. A crash loses at most one window of counts of this instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[str, _Sums] = {}
        self._timer: threading.Timer | None = None

    def add(self, version: str, scored: _Scored) -> None:
        window = _window_seconds()
        if window <= 0:
            sums = _Sums()
            sums.add(scored)
            _emit_scored(version, sums)
            return
        with self._lock:
            self._sums.setdefault(version, _Sums()).add(scored)
            if self._timer is None:
                self._timer = threading.Timer(window, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            sums, self._sums = self._sums, {}
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        for version, values in sums.items():
            _emit_scored(version, values)


def _window_seconds() -> float:
    try:
        return float(os.environ.get(SCORED_WINDOW_ENV) or DEFAULT_SCORED_WINDOW_S)
    except ValueError:
        return DEFAULT_SCORED_WINDOW_S


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _emit_scored(version: str, sums: _Sums) -> None:
    try:
        texts = sums.texts
        dimensions = {
            MODEL_VERSION: version,
            TEXTS: str(int(texts)),
            NEGATIVES: str(int(sums.negatives)),
            MEAN_NEGATIVE_PROBABILITY: _number(sums.probability_sum / texts if texts else 0.0),
        }
        if sums.shadow >= 0:
            dimensions[SHADOW_DISAGREEMENTS] = str(int(sums.shadow))
        if sums.histogram is not None:
            dimensions[SCORE_HISTOGRAM] = _compact(sums.histogram)
        if sums.topics is not None:
            dimensions[TOPICS] = _compact(sums.topics)
        if sums.unknown_texts > 0:
            dimensions[UNKNOWN_SHARE] = _number(sums.unknown_sum / sums.unknown_texts)
        if sums.empty >= 0:
            dimensions[EMPTY_AFTER_NORMALIZATION] = str(int(sums.empty))
        if sums.encoder is not None:
            dimensions[ENCODER_TEXTS] = str(int(sums.encoder[0]))
            dimensions[ENCODER_SKIPPED] = str(int(sums.encoder[1]))
        _emit(SENTIMENT_SCORED, dimensions)
    except Exception:
        _debug.debug("SentimentScored not recorded", exc_info=True)


_scored = _ScoredWindow()


class _EventBudget:
    """At most ``limit`` events per minute per instance: feedback cannot be turned into an unbounded event
    stream (the workspace's daily cap silences every alert once reached). The wrong-prediction alert needs
    a handful per five minutes, so a full budget still fires it; the ledger keeps every feedback. Events
    over the budget are counted and reported once per minute in the app log."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._minute = 0
        self._used = 0
        self._dropped = 0

    def take(self) -> bool:
        minute = int(time.monotonic() // 60)
        with self._lock:
            if minute != self._minute:
                dropped, self._dropped = self._dropped, 0
                self._minute, self._used = minute, 0
                if dropped:
                    _app_log.warning(
                        "%d feedback events over the limit of %d a minute were not sent", dropped, self.limit
                    )
            if self._used >= self.limit:
                self._dropped += 1
                return False
            self._used += 1
            return True


def _feedback_events_per_minute() -> int:
    try:
        return max(1, int(os.environ.get(FEEDBACK_EVENTS_ENV) or DEFAULT_FEEDBACK_EVENTS_PER_MINUTE))
    except ValueError:
        return DEFAULT_FEEDBACK_EVENTS_PER_MINUTE


_feedback_budget = _EventBudget(_feedback_events_per_minute())


def record_scored(
    *,
    model_version: str,
    texts: int,
    negatives: int,
    mean_negative_probability: float,
    shadow_disagreements: int | None = None,
    score_histogram: Sequence[int] | None = None,
    topics: Mapping[str, Sequence[int]] | None = None,
    unknown_share: float | None = None,
    unknown_texts: int | None = None,
    empty_after_normalization: int | None = None,
    encoder_texts: int | None = None,
    encoder_skipped: int | None = None,
) -> None:
    """Count one successful predict request toward SentimentScored (feeds the bad-buzz alert and the
    drift alerts): summed per window, see ``_ScoredWindow``. ``shadow_disagreements``: texts on which
    the shadow model (if one is loaded) gave another label. The drift signals are optional (left out of
    the event when no request of the window gave them): ``score_histogram`` (HISTOGRAM_BINS counts of
    negative probabilities over [0, 1)), ``topics`` (topic -> (texts, negatives)), ``unknown_share``
    (mean over ``unknown_texts`` texts, all of them when not given), ``empty_after_normalization``;
    with a cascade, ``encoder_texts`` (re-read by the encoder) and ``encoder_skipped`` (past the quota)."""
    try:
        count = int(texts)
        histogram = None if score_histogram is None else [int(c) for c in score_histogram]
        if histogram is not None and len(histogram) != HISTOGRAM_BINS:
            raise ValueError(f"score_histogram needs {HISTOGRAM_BINS} bins, got {len(histogram)}")
        pairs = None if topics is None else {str(k): (int(v[0]), int(v[1])) for k, v in topics.items()}
        _scored.add(
            str(model_version),
            _Scored(
                count,
                int(negatives),
                float(mean_negative_probability) * count,
                None if shadow_disagreements is None else int(shadow_disagreements),
                histogram,
                pairs,
                None if unknown_share is None else float(unknown_share),
                count if unknown_texts is None else int(unknown_texts),
                None if empty_after_normalization is None else int(empty_after_normalization),
                None if encoder_texts is None else (int(encoder_texts), int(encoder_skipped or 0)),
            ),
        )
    except Exception:
        _debug.debug("SentimentScored not recorded", exc_info=True)


def record_feedback(
    *,
    feedback_id: str,
    prediction_id: str | None,
    predicted_label: str,
    negative_probability: float | None,
    model_version: str,
    text: str,
    correct: bool,
    matched_prediction: bool,
) -> None:
    """WrongPrediction (with the text, for retraining, unless FEEDBACK_INCLUDE_TEXT=false) or
    PredictionConfirmed. Unknown prediction_id / negative_probability are left out, not sent empty.
    ``matched_prediction``: the id was issued by this service (the alert counts only those). At most
    ``FEEDBACK_EVENTS_PER_MINUTE`` (default 600) per instance (see ``_EventBudget``)."""
    try:
        if not _feedback_budget.take():
            return
        dimensions = {FEEDBACK_ID: str(feedback_id)}
        if prediction_id is not None:
            dimensions[PREDICTION_ID] = str(prediction_id)
        dimensions[PREDICTED_LABEL] = str(predicted_label)
        if negative_probability is not None:
            dimensions[NEGATIVE_PROBABILITY] = _number(negative_probability)
        dimensions[MODEL_VERSION] = str(model_version)
        dimensions[MATCHED_PREDICTION] = "true" if matched_prediction else "false"
        if not correct and _env_true(INCLUDE_TEXT_ENV, default=True):
            dimensions[TEXT] = str(text)[:TEXT_MAX_CHARS]
        _emit(PREDICTION_CONFIRMED if correct else WRONG_PREDICTION, dimensions)
    except Exception:
        _debug.debug("feedback event not recorded", exc_info=True)
