"""``feedback-pull`` against a real Table Storage (Azurite): ledger rows in, a CSV of true labels out."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from typer.testing import CliRunner

from tests.azurite import azurite, azurite_server  # noqa: F401 (fixtures)
from training.cli import app
from training.data import read_tweets
from training.ledger import parse_since, true_label


def row(day: str, feedback_id: str, text: str, predicted: str, correct: bool, received: str, **extra) -> dict:
    """A feedback row as the service writes it."""
    return {
        "PartitionKey": day,
        "RowKey": feedback_id,
        "prediction_id": f"p-{feedback_id}",
        "text": text,
        "predicted_label": predicted,
        "correct": correct,
        "true_label": extra.pop("true_label", predicted if correct else _other(predicted)),
        "negative_probability": 0.9 if predicted == "negative" else 0.1,
        "model_version": "2026.11.23-d15f45e9",
        "matched_prediction": extra.pop("matched", True),
        "received_at": received,
        **extra,
    }


def _other(label: str) -> str:
    return "positive" if label == "negative" else "negative"


LEDGER = [
    row("20261120", "a1", "Lost my bag AGAIN @AirParadis", "positive", False, "2026-11-20T08:00:00+00:00"),
    row("20261120", "a2", "great crew, thanks!", "positive", True, "2026-11-20T09:00:00+00:00"),
    # Forged: no prediction of the service matches it.
    row("20261121", "b1", "best airline ever", "negative", False, "2026-11-21T10:00:00+00:00", matched=False),
    # The same tweet judged again later (same text once normalized), the other way: the later row wins.
    row("20261122", "c1", "lost my bag again @airparadis", "negative", False, "2026-11-22T07:00:00+00:00"),
    row("20261122", "c2", 'delayed 3 hours, "fine"\nreally', "negative", True, "2026-11-22T11:00:00+00:00"),
    # Older rows stored without ``true_label``: it follows from the prediction and ``correct``.
    {
        **row("20261123", "d1", "rude staff at the gate", "positive", False, "2026-11-23T12:00:00+00:00"),
        "true_label": None,
    },
    row("20261123", "d2", "   ", "positive", True, "2026-11-23T13:00:00+00:00"),
]


@pytest.fixture
def ledger(azurite) -> str:  # noqa: F811 (the imported fixture)
    azurite.delete_tables()
    table = TableServiceClient.from_connection_string(azurite.connection_string).create_table("feedback")
    for entity in LEDGER:
        table.create_entity({key: value for key, value in entity.items() if value is not None})
    return azurite.connection_string


def pull(connection_string: str, out: Path, *options: str):
    return CliRunner().invoke(
        app, ["feedback-pull", "--out", str(out), "--connection-string", connection_string, *options]
    )


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_pull_keeps_matched_rows_latest_label_per_text_and_the_text_as_written(ledger, tmp_path):
    result = pull(ledger, tmp_path / "feedback.csv")
    assert result.exit_code == 0, result.output
    assert csv_rows(tmp_path / "feedback.csv") == [
        ["label", "text"],
        ["positive", "great crew, thanks!"],
        ["positive", "lost my bag again @airparadis"],  # c1 replaced a1 (the same text, later)
        ["negative", 'delayed 3 hours, "fine"\nreally'],
        ["negative", "rude staff at the gate"],
    ]
    assert "read 6 feedback rows, wrote 4" in result.output
    assert "1 duplicate text" in result.output and "1 no text" in result.output
    # What train and compare read: the project's reader accepts the file as it is.
    assert read_tweets(tmp_path / "feedback.csv").labels.tolist() == [1, 1, 0, 0]


def test_all_includes_unmatched_feedback_and_since_filters_by_day(ledger, tmp_path):
    assert pull(ledger, tmp_path / "all.csv", "--all").exit_code == 0
    assert ["positive", "best airline ever"] in csv_rows(tmp_path / "all.csv")
    result = pull(ledger, tmp_path / "recent.csv", "--since", "2026-11-22")
    assert result.exit_code == 0, result.output
    assert csv_rows(tmp_path / "recent.csv") == [
        ["label", "text"],
        ["positive", "lost my bag again @airparadis"],
        ["negative", 'delayed 3 hours, "fine"\nreally'],
        ["negative", "rude staff at the gate"],
    ]
    assert "read 4 feedback rows" in result.output


def test_bad_settings_and_an_unreachable_ledger_are_clear_errors(azurite, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("LEDGER_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("LEDGER_TABLE_ENDPOINT", raising=False)
    unset = CliRunner().invoke(app, ["feedback-pull", "--out", str(tmp_path / "x.csv")])
    assert unset.exit_code == 1 and "no ledger configured" in unset.output
    bad_date = pull(azurite.connection_string, tmp_path / "x.csv", "--since", "22/11/2026")
    assert bad_date.exit_code == 2 and "YYYY-MM-DD" in bad_date.output
    azurite.delete_tables()
    missing = pull(azurite.connection_string, tmp_path / "x.csv")
    assert missing.exit_code == 1 and "no table 'feedback'" in missing.output
    azurite.stop()
    try:
        down = pull(azurite.connection_string, tmp_path / "x.csv")
    finally:
        azurite.start()
    assert down.exit_code == 1 and "could not be read" in down.output
    assert not (tmp_path / "x.csv").exists()


def test_true_label_rules_and_since_parsing():
    assert true_label({"true_label": "Negative"}) == "negative"
    assert true_label({"predicted_label": "negative", "correct": False}) == "positive"
    assert true_label({"predicted_label": "positive", "correct": True}) == "positive"
    assert true_label({"predicted_label": "neutral", "correct": False}) is None
    assert true_label({"predicted_label": "negative"}) is None
    assert parse_since("2026-11-02") == parse_since("20261102") == "20261102"
    with pytest.raises(ValueError, match="not a date"):
        parse_since("yesterday")
