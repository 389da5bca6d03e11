"""``feedback-pull``: the ledger's feedback rows as training rows (``label,text`` CSV of true labels).

The service writes one row per feedback to the Azure Table Storage table ``feedback`` (PartitionKey = UTC
day ``YYYYMMDD``, RowKey = feedback id; ``text``, ``predicted_label``, ``correct``, ``true_label``,
``matched_prediction``, ``received_at``, ...). A row's true label is ``true_label`` when the row has one,
else the predicted label when ``correct`` is true and the other label when it is false. Rows are
deduplicated by normalized text, the latest ``received_at`` winning (a user's later correction replaces
an earlier judgement); the text is written as the user sent it. By default only feedback on predictions
the service issued (``matched_prediction`` true) is kept: anyone can post feedback, and forged rows must
not teach the model.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from serving.contract import LABELS
from serving.normalizer import normalize

TABLE = "feedback"
CONNECTION_ENV = "LEDGER_CONNECTION_STRING"
ENDPOINT_ENV = "LEDGER_TABLE_ENDPOINT"
# Longest text kept: the service refuses longer ones, so a longer row is not one it wrote.
MAX_TEXT_CHARS = 5_000


class LedgerError(RuntimeError):
    """The ledger cannot be reached or read; the message says what to check."""


@dataclass
class PullReport:
    """What a pull read, kept and left out (printed by the command, tested by the tests)."""

    read: int = 0
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def parse_since(value: str) -> str:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` -> the PartitionKey of that UTC day; ValueError otherwise."""
    for layout in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(value.strip(), layout).strftime("%Y%m%d")
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date: expected YYYY-MM-DD (a UTC day)")


def table_client(connection_string: str | None = None, table: str = TABLE, environ: Mapping | None = None):
    """A client of the ledger table: an explicit or ``LEDGER_CONNECTION_STRING`` connection string
    (Azurite locally), else ``LEDGER_TABLE_ENDPOINT`` with ``DefaultAzureCredential`` (managed identity,
    workload identity in CI, or the developer's ``az login``)."""
    from azure.data.tables import TableClient

    env = os.environ if environ is None else environ
    connection_string = connection_string or env.get(CONNECTION_ENV)
    if connection_string:
        try:
            return TableClient.from_connection_string(connection_string, table_name=table)
        except ValueError as error:
            raise LedgerError(f"the ledger connection string is not usable: {error}") from None
    endpoint = env.get(ENDPOINT_ENV)
    if endpoint:
        from azure.identity import DefaultAzureCredential

        return TableClient(endpoint, table_name=table, credential=DefaultAzureCredential())
    raise LedgerError(
        f"no ledger configured: set {CONNECTION_ENV} (or --connection-string), or {ENDPOINT_ENV} "
        "with an identity allowed to read the table"
    )


def query_filter(since: str | None, matched_only: bool) -> tuple[str | None, dict]:
    """OData filter and its parameters: a PartitionKey range for ``since``, the matched flag."""
    clauses, parameters = [], {}
    if since:
        clauses.append("PartitionKey ge @since")
        parameters["since"] = since
    if matched_only:
        clauses.append("matched_prediction eq true")
    return (" and ".join(clauses) or None), parameters


def true_label(row: Mapping) -> str | None:
    """The label the user says is right, or None when the row does not tell."""
    stated = row.get("true_label")
    if isinstance(stated, str) and stated.strip().lower() in LABELS:
        return stated.strip().lower()
    predicted, correct = row.get("predicted_label"), row.get("correct")
    if not isinstance(predicted, str) or predicted.strip().lower() not in LABELS:
        return None
    predicted = predicted.strip().lower()
    if correct is True:
        return predicted
    if correct is False:
        return LABELS[1 - LABELS.index(predicted)]
    return None


def latest_by_text(rows: Iterable[Mapping], report: PullReport) -> list[tuple[str, str]]:
    """(label, text) per normalized text, the latest ``received_at`` winning (RowKey breaks ties);
    ordered by that time so the file reads as a log."""
    latest: dict[str, tuple[str, str, str, str]] = {}  # normalized -> (received_at, row key, label, text)
    for row in rows:
        report.read += 1
        text, label = row.get("text"), true_label(row)
        if not isinstance(text, str) or not text.strip():
            report.skip("no text")
            continue
        if len(text) > MAX_TEXT_CHARS:
            report.skip(f"text over {MAX_TEXT_CHARS} characters")
            continue
        if label is None:
            report.skip("no true label")
            continue
        key = normalize(text)
        if not key:
            report.skip("empty after normalization")
            continue
        received = str(row.get("received_at") or "")
        candidate = (received, str(row.get("RowKey", "")), label, text)
        previous = latest.get(key)
        if previous is not None:
            report.skip("duplicate text (an older row)")
            if candidate[:2] < previous[:2]:
                continue
        latest[key] = candidate
    return [(label, text) for _, _, label, text in sorted(latest.values())]


def write_feedback_csv(rows: list[tuple[str, str]], out: Path) -> Path:
    """``label,text`` with a header, UTF-8 (what ``train --feedback`` and ``compare`` read)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "text"])
        writer.writerows(rows)
    temporary.replace(out)
    return out


def pull_feedback(
    out: Path,
    *,
    since: str | None = None,
    matched_only: bool = True,
    connection_string: str | None = None,
    table: str = TABLE,
) -> PullReport:
    """Read the ledger's feedback rows (``since``: a PartitionKey, inclusive) and write the CSV."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError

    client = table_client(connection_string, table)
    query, parameters = query_filter(since, matched_only)
    report = PullReport()
    select = ["RowKey", "text", "true_label", "predicted_label", "correct", "received_at"]
    try:
        with client:
            if query:
                entities = client.query_entities(query, parameters=parameters, select=select)
            else:
                entities = client.list_entities(select=select)
            rows = latest_by_text(entities, report)
    except ResourceNotFoundError:
        raise LedgerError(f"the ledger has no table {table!r}: no feedback was ever recorded there") from None
    except ClientAuthenticationError as error:
        raise LedgerError(f"the ledger refused the credentials: {error.message}") from None
    except AzureError as error:
        raise LedgerError(f"the ledger could not be read: {type(error).__name__}: {error}") from None
    write_feedback_csv(rows, out)
    report.written = len(rows)
    return report
