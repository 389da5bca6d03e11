"""The prediction and feedback ledger: Azure Table Storage rows that outlive telemetry sampling and retention,
so that feedback can be joined to what the service really answered and pulled back as training data.

Two tables, created at first use: ``feedback`` (one row per feedback, written before the answer, so an
accepted feedback is durable) and ``predictions`` (one row per scored text, written in the background
in entity-group transactions, so predict never waits for storage). Rows are partitioned by UTC day.

Prediction rows pass through a bounded in-memory queue (``QUEUE_ROWS`` rows, ``QUEUE_BYTES`` bytes of
their JSON): when it is full new rows are dropped and counted, and a batch that storage keeps
refusing is dropped after ``WRITE_ATTEMPTS`` tries and counted too (both reported in the app log). The
queue is flushed by ``flush()`` and at a normal exit (for up to ``SHUTDOWN_FLUSH_S``); a process killed
outright loses the rows still queued, at most ``QUEUE_ROWS``.

``azure.data.tables`` (and ``azure.identity``, for the managed identity) are imported only when a ledger
setting is present: without one, the service keeps its cold start and feedback is an event only.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

CONNECTION_STRING_SETTING = "LEDGER_CONNECTION_STRING"
TABLE_ENDPOINT_SETTING = "LEDGER_TABLE_ENDPOINT"
STORE_PREDICTIONS_SETTING = "LEDGER_STORE_PREDICTIONS"
INCLUDE_TEXT_SETTING = "LEDGER_INCLUDE_TEXT"
CLIENT_ID_SETTING = "AZURE_CLIENT_ID"
PREDICTIONS_TABLE = "predictions"
FEEDBACK_TABLE = "feedback"
STORED_FIELDS = ("label", "negative_probability", "model_version")  # what the join reads

# The queue of prediction rows not yet written: its bound is the most a crash can lose, and its memory is
# bounded by rows and by their JSON, kept ready to send (ASCII: one byte a character, every non-ASCII
# character escaped, 12 bytes for one outside the BMP).
QUEUE_ROWS = 10_000
QUEUE_BYTES = 16_000_000
# One transaction: at most 100 entities of one partition (the service's limit) and a request under the
# service's 4 MiB.
BATCH_ROWS = 100
BATCH_BYTES = 3 * 1024 * 1024
ROW_OVERHEAD_BYTES = 1024
# A failed batch is tried again after 0.5, 1 and 2 s, then dropped: a storage outage costs memory (the
# bounded queue), never an unbounded backlog.
WRITE_ATTEMPTS = 4
# How long queued rows may wait for a full batch before they are written anyway.
WRITE_LINGER_S = 0.25
RETRY_BASE_S = 0.5
# Every storage call is one attempt of at most CONNECT_TIMEOUT_S + READ_TIMEOUT_S; the code above decides
# whether to try again. After a failure, feedback is refused at once for FAIL_FAST_S (a storage black hole
# must not hold every worker thread), and the client is told to come back after RETRY_AFTER_S.
CONNECT_TIMEOUT_S = 2
READ_TIMEOUT_S = 3
FAIL_FAST_S = 2.0
RETRY_AFTER_S = 5
SHUTDOWN_FLUSH_S = 10.0
DROP_REPORT_INTERVAL_S = 60.0

_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
log = logging.getLogger("air_paradis.ledger")


class LedgerUnavailable(RuntimeError):
    """Storage could not be reached or refused the write; ``record`` is the best-known feedback (joined
    when the lookup succeeded, else the client's values) so the event can still be emitted."""

    def __init__(self, message: str, record: FeedbackRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    connection_string: str | None
    table_endpoint: str | None
    client_id: str | None
    store_predictions: bool
    include_text: bool

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> LedgerSettings | None:
        """None when neither connection setting is present: no ledger."""
        env = os.environ if environ is None else environ
        connection_string = env.get(CONNECTION_STRING_SETTING, "").strip() or None
        endpoint = env.get(TABLE_ENDPOINT_SETTING, "").strip().rstrip("/") or None
        if connection_string is None and endpoint is None:
            return None
        return cls(
            connection_string,
            endpoint,
            env.get(CLIENT_ID_SETTING, "").strip() or None,
            _flag(env, STORE_PREDICTIONS_SETTING),
            _flag(env, INCLUDE_TEXT_SETTING),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() not in _FALSE_WORDS


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    label: str
    negative_probability: float
    model_version: str


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """What a feedback is recorded with (row and event): the stored prediction's values when it was
    found, else the client's copies and the served model version."""

    predicted_label: str
    negative_probability: float | None
    model_version: str
    matched_prediction: bool


@dataclass(frozen=True, slots=True)
class QueuedRow:
    """A prediction row waiting for the writer: its partition and join fields, and its entity as JSON."""

    partition: str
    label: str
    negative_probability: float
    model_version: str
    body: str


@dataclass(frozen=True, slots=True)
class ScoredText:
    prediction_id: str
    label: str
    negative_probability: float
    text: str


def utc_day(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


_STAMP: tuple[int, str, str] = (0, "", "")  # the last second formatted: (POSIX second, day, ISO prefix)


def stamp(moment: datetime) -> tuple[str, str]:
    """(UTC day, ISO time) of ``moment``, the second's part formatted once per second: ``strftime`` costs
    more than the rest of a prediction row."""
    global _STAMP
    second = int(moment.timestamp())
    cached = _STAMP  # one reference read: threads never see a day and a time of different seconds
    if cached[0] != second:
        whole = datetime.fromtimestamp(second, UTC)
        cached = _STAMP = (second, whole.strftime("%Y%m%d"), whole.strftime("%Y-%m-%dT%H:%M:%S"))
    return cached[1], f"{cached[2]}.{moment.microsecond:06d}Z"


def connect(settings: LedgerSettings) -> TableServiceClient:
    """The table service client: the connection string when given (it takes precedence), else the
    endpoint with the app's managed identity (the user-assigned one named by AZURE_CLIENT_ID, or
    whatever DefaultAzureCredential finds). No network call is made here."""
    from azure.data.tables import TableServiceClient

    options: dict[str, Any] = {
        "connection_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": READ_TIMEOUT_S,
        "retry_total": 0,
    }
    if settings.connection_string:
        return TableServiceClient.from_connection_string(settings.connection_string, **options)
    if settings.client_id:
        from azure.identity import ManagedIdentityCredential

        credential: Any = ManagedIdentityCredential(client_id=settings.client_id)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return TableServiceClient(endpoint=str(settings.table_endpoint), credential=credential, **options)


def from_settings(environ: Mapping[str, str] | None = None) -> Ledger | None:
    """The configured ledger, or None without a ledger setting. Never raises: a client that cannot be
    built is logged and the app runs without a ledger, since an import-time exception would stop Azure
    from finding any function."""
    settings = LedgerSettings.from_environ(environ)
    if settings is None:
        return None
    try:
        service = connect(settings)
        ledger = Ledger(
            service, store_predictions=settings.store_predictions, include_text=settings.include_text
        )
    except Exception:
        log.exception("the ledger could not be configured; feedback is recorded as events only")
        return None
    _at_exit(ledger.close)
    return ledger


def _at_exit(hook: Callable[[], object]) -> None:
    """Run ``hook`` at a normal interpreter exit while thread pools still accept work: the SDK runs the
    parts of each transaction on a ThreadPoolExecutor, which refuses new work once ``concurrent.futures``'
    own exit hook has run. Threading's exit hooks run last registered first, before plain ``atexit``."""
    import concurrent.futures.thread  # noqa: F401  registers its hook first, so it runs after ours

    register = getattr(threading, "_register_atexit", None)
    if register is None:
        atexit.register(hook)
    else:
        register(hook)


class Ledger:
    """Writes feedback rows synchronously and prediction rows through the bounded background queue, and
    joins feedback to the stored prediction."""

    def __init__(
        self,
        service: TableServiceClient,
        *,
        store_predictions: bool = True,
        include_text: bool = True,
        queue_rows: int = QUEUE_ROWS,
        queue_bytes: int = QUEUE_BYTES,
    ) -> None:
        # Quiet the SDK's per-request INFO lines: one per storage call would flood the app log.
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
        self.service = service
        from serving.table_http import TableHttp  # not at module import: without a ledger it is not needed

        self.http = TableHttp(service, CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        self.store_predictions = store_predictions
        self.include_text = include_text
        self.queue_rows = queue_rows
        self.queue_bytes = queue_bytes
        self._created: set[str] = set()
        self._cond = threading.Condition()
        self._pending: dict[str, QueuedRow] = {}  # queued or being written, by RowKey
        self._queue: deque[str] = deque()  # RowKeys not yet taken by the writer
        self._pending_bytes = 0
        self._topics_json: dict[tuple[str, ...], str] = {}  # a few lexicon combinations, each once
        self._writer: threading.Thread | None = None
        self._closing = False
        self._flushing = 0  # callers waiting in flush(): the writer does not linger for them
        self._down_until = 0.0
        self._drops_reported_at = 0.0
        self._drops_unreported = 0
        self.written = 0
        self.dropped_full = 0
        self.dropped_failed = 0

    # --------------------------------------------------------------------------------- tables
    def _ensure_table(self, name: str) -> None:
        """Create the table if missing, the first time this process uses it (or after a write found it
        gone)."""
        if name not in self._created:
            self.service.create_table_if_not_exists(name)
            self._created.add(name)

    # ----------------------------------------------------------------------------- predictions
    @property
    def pending(self) -> int:
        """Prediction rows accepted but not yet written (queued or in flight)."""
        with self._cond:
            return len(self._pending)

    def record_predictions(
        self,
        scored: Sequence[ScoredText],
        model_version: str,
        topics: Sequence[Sequence[str]] | None = None,
        *,
        at: datetime | None = None,
    ) -> int:
        """Queue one row per scored text (never blocks on storage); returns how many were queued, the
        others were dropped because the queue is full. ``at``: when they were scored (default: now).

        Each row's JSON is written here, in the request, so that the writer thread only joins strings
        and sends them: a writer building JSON would hold the interpreter lock that requests wait for."""
        if not self.store_predictions or not scored:
            return 0
        day, scored_at = stamp(at or datetime.now(UTC))
        head = f'{{"PartitionKey":"{day}","scored_at":"{scored_at}","model_version":{_json(model_version)}'
        rows = []
        for index, item in enumerate(scored):
            names = tuple(topics[index]) if topics else ()
            topics_json = self._topics_json.get(names)
            if topics_json is None:
                topics_json = self._topics_json[names] = _json(json.dumps(list(names)))
            probability = float(item.negative_probability)
            text = f',"text":{_json(item.text)}' if self.include_text else ""
            body = (
                f'{head},"RowKey":{_json(item.prediction_id)},"label":{_json(item.label)},'
                f'"negative_probability":{probability!r},"negative_probability@odata.type":"Edm.Double",'
                f'"topics":{topics_json}{text}}}'
            )
            rows.append((item.prediction_id, QueuedRow(day, item.label, probability, model_version, body)))
        queued = 0
        with self._cond:
            idle = not self._queue  # the writer waits for a first row only then
            for key, row in rows:
                size = len(row.body)
                if (
                    self._closing
                    or len(self._pending) >= self.queue_rows
                    or self._pending_bytes + size > self.queue_bytes
                ):
                    self.dropped_full += 1
                    self._drops_unreported += 1
                    continue
                self._pending[key] = row
                self._queue.append(key)
                self._pending_bytes += size
                queued += 1
            if queued:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_loop, name="ledger-writer", daemon=True
                    )
                    self._writer.start()
                # Wake the writer for a first row or a full batch only: a wake-up per request would hand
                # the interpreter lock to the writer and back for every predict.
                if idle or len(self._queue) >= BATCH_ROWS:
                    self._cond.notify_all()
        if queued < len(scored):
            self._report_drops()
        return queued

    def _report_drops(self) -> None:
        now = time.monotonic()
        with self._cond:
            if not self._drops_unreported or now - self._drops_reported_at < DROP_REPORT_INTERVAL_S:
                return
            count, self._drops_unreported, self._drops_reported_at = self._drops_unreported, 0, now
        log.warning(
            "ledger queue full (%d rows or %d bytes): %d prediction rows dropped",
            self.queue_rows,
            self.queue_bytes,
            count,
        )

    def _take_batch(self) -> list[tuple[str, QueuedRow]]:
        """Up to BATCH_ROWS queued rows of the first row's partition, within BATCH_BYTES (called with
        the lock held; rows of another partition stay queued, in order)."""
        batch: list[tuple[str, QueuedRow]] = []
        skipped: list[str] = []
        size = 0
        partition = self._pending[self._queue[0]].partition
        while self._queue and len(batch) < BATCH_ROWS:
            key = self._queue[0]
            row = self._pending[key]
            if row.partition != partition:
                skipped.append(self._queue.popleft())
                continue
            row_bytes = ROW_OVERHEAD_BYTES + len(row.body)
            if batch and size + row_bytes > BATCH_BYTES:
                break
            batch.append((key, row))
            size += row_bytes
            self._queue.popleft()
        self._queue.extendleft(reversed(skipped))
        return batch

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                # Linger until a full batch is queued (or WRITE_LINGER_S passed): fewer, fuller
                # transactions, so the writer takes the interpreter lock from requests less often.
                linger_until = time.monotonic() + WRITE_LINGER_S
                while len(self._queue) < BATCH_ROWS and not (self._closing or self._flushing):
                    left = linger_until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._queue:
                    return
                batch = self._take_batch()
            written = self._write_batch(batch)
            with self._cond:
                for key, row in batch:
                    del self._pending[key]
                    self._pending_bytes -= len(row.body)
                if written:
                    self.written += len(batch)
                else:
                    self.dropped_failed += len(batch)
                self._cond.notify_all()

    def _write_batch(self, batch: list[tuple[str, QueuedRow]]) -> bool:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self._ensure_table(PREDICTIONS_TABLE)
                self.http.upsert_json(PREDICTIONS_TABLE, [(r.partition, k, r.body) for k, r in batch])
                return True
            except Exception as error:
                self._created.discard(PREDICTIONS_TABLE)  # create it again if storage lost it
                if attempt + 1 == WRITE_ATTEMPTS:
                    log.error(
                        "ledger: %d prediction rows dropped after %d failed writes: %s",
                        len(batch),
                        WRITE_ATTEMPTS,
                        _short(error),
                    )
                    return False
                time.sleep(RETRY_BASE_S * 2**attempt)
        return False

    def flush(self, timeout_s: float = SHUTDOWN_FLUSH_S) -> bool:
        """Wait until every queued prediction row is written or dropped; False if some are still pending
        after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._pending:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout_s: float = SHUTDOWN_FLUSH_S) -> bool:
        """Flush (at exit: registered by ``from_settings``), then stop the writer; rows still pending
        after ``timeout_s`` are lost and counted in the log."""
        flushed = self.flush(timeout_s)
        with self._cond:
            self._closing = True
            left = len(self._pending)
            self._cond.notify_all()
        if not flushed:
            log.error("ledger: %d prediction rows not written at shutdown", left)
        if self.dropped_full or self.dropped_failed:
            log.warning(
                "ledger: %d prediction rows written, %d dropped (queue full), %d dropped (storage failed)",
                self.written,
                self.dropped_full,
                self.dropped_failed,
            )
        return flushed

    # -------------------------------------------------------------------------------- feedback
    def _check_up(self) -> None:
        if time.monotonic() < self._down_until:
            raise LedgerUnavailable("the ledger failed moments ago")

    def _failed(self, what: str, error: Exception, record: FeedbackRecord | None) -> LedgerUnavailable:
        self._down_until = time.monotonic() + FAIL_FAST_S
        log.warning("ledger unavailable (%s): %s", what, _short(error))
        return LedgerUnavailable(f"the ledger could not {what}", record)

    def find_prediction(self, prediction_id: str) -> StoredPrediction | None:
        """The stored prediction (queued here, or in today's or yesterday's partition: feedback comes
        within minutes); None when not found. Raises LedgerUnavailable when storage cannot answer."""
        from serving.table_http import TableCallFailed

        with self._cond:
            queued = self._pending.get(prediction_id)
        if queued is not None:
            return StoredPrediction(queued.label, queued.negative_probability, queued.model_version)
        self._check_up()
        today = datetime.now(UTC)
        for day in (today, today - timedelta(days=1)):
            try:
                entity = self.http.get(PREDICTIONS_TABLE, utc_day(day), prediction_id, STORED_FIELDS)
            except TableCallFailed as error:
                raise self._failed("look the prediction up", error, None) from None
            if entity is not None:  # None: no such row, or no table yet
                return StoredPrediction(
                    str(entity["label"]), float(entity["negative_probability"]), str(entity["model_version"])
                )
        return None

    def record_feedback(
        self,
        *,
        feedback_id: str,
        prediction_id: str | None,
        signed: bool,
        text: str,
        correct: bool,
        claimed: FeedbackRecord,
        labels: Sequence[str],
    ) -> FeedbackRecord:
        """Join the feedback to its stored prediction and write its row before returning. ``signed``: the
        id's signature is valid (an unsigned id is never looked up). ``claimed``: the client's values and
        the served model version. Returns what was recorded; raises LedgerUnavailable (with the best-known
        record) when the row could not be written."""
        record = FeedbackRecord(
            claimed.predicted_label, claimed.negative_probability, claimed.model_version, signed
        )
        try:
            if signed and self.store_predictions and prediction_id is not None:
                stored = self.find_prediction(prediction_id)
                if stored is None:
                    record = FeedbackRecord(
                        claimed.predicted_label, claimed.negative_probability, claimed.model_version, False
                    )
                else:
                    record = FeedbackRecord(
                        stored.label, stored.negative_probability, stored.model_version, True
                    )
        except LedgerUnavailable as error:
            error.record = record
            raise
        self._check_up_for(record)
        day, received_at = stamp(datetime.now(UTC))
        other = [label for label in labels if label != record.predicted_label]
        entity: dict[str, Any] = {
            "PartitionKey": day,
            "RowKey": feedback_id,
            "predicted_label": record.predicted_label,
            "correct": bool(correct),
            "true_label": record.predicted_label if correct or not other else other[0],
            "model_version": record.model_version,
            "matched_prediction": record.matched_prediction,
            "received_at": received_at,
        }
        if prediction_id is not None:
            entity["prediction_id"] = prediction_id
        if record.negative_probability is not None:
            entity["negative_probability"] = float(record.negative_probability)
        if self.include_text:  # corrections and confirmations alike are training rows
            entity["text"] = text
        self._insert_feedback(entity, record)
        return record

    def _check_up_for(self, record: FeedbackRecord) -> None:
        try:
            self._check_up()
        except LedgerUnavailable as error:
            error.record = record
            raise

    def _insert_feedback(self, entity: dict[str, Any], record: FeedbackRecord) -> None:
        from serving.table_http import TableCallFailed

        for attempt in range(2):
            try:
                self._ensure_table(FEEDBACK_TABLE)
                self.http.insert(FEEDBACK_TABLE, entity)
                return
            except TableCallFailed as error:
                self._created.discard(FEEDBACK_TABLE)
                if error.status != 404 or attempt:  # 404: the table is gone; create it again, once
                    raise self._failed("write the feedback", error, record) from None
            except Exception as error:  # the table could not be created
                self._created.discard(FEEDBACK_TABLE)
                raise self._failed("write the feedback", error, record) from None


def _short(error: BaseException) -> str:
    """The first line of an SDK error (they carry whole responses)."""
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}"


_json = json.encoder.encode_basestring_ascii  # a str as a JSON string, every non-ASCII character escaped
