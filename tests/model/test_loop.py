"""The MLOps loop end to end, offline: the local host with the ledger on Azurite serves a champion, users
say it is wrong about tweets of a new word, ``feedback-pull`` turns the ledger into training rows,
``train`` fits a challenger with them, and ``compare`` lets it through the gate; the same run with
contradictory feedback (the users disagree with each other) is stopped by the gate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devtools.local_host import HostProcess
from devtools.telemetry_sink import OFFLINE_ENV
from tests.app_fixtures import HttpClient
from tests.azurite import Azurite, azurite, azurite_server  # noqa: F401 (fixtures)
from tests.training_cli import cli, train_baseline
from tests.tweet_factory import write_labelled_csv

pytestmark = pytest.mark.slow

# A word the champion never saw, in tweets made only of words it never saw: nothing else it learned
# is touched by the feedback, so the test sets measure the cost of learning the new word alone.
NEW_WORD = "zorbly"


def new_word_tweets(count: int) -> list[str]:
    letters = "qxzvjk"
    return [
        f"{NEW_WORD} {letters[i % 6]}{letters[i // 6 % 6]}{letters[i // 36 % 6]}q {NEW_WORD}"
        for i in range(count)
    ]


def run_loop(root: Path, store: Azurite, champion: Path, truth) -> tuple[int, dict]:
    """Serve the champion with the ledger on, score the new-word tweets, send each user's verdict
    (``truth(index, predicted)``: the label the user says is right), pull, train, compare; the compare
    exit status and report."""
    env = {k: v for k, v in os.environ.items() if "APPLICATIONINSIGHTS" not in k} | OFFLINE_ENV
    env |= {
        "MODEL_PATH": str(champion),
        "LEDGER_CONNECTION_STRING": store.connection_string,
        "PREDICTION_ID_KEY": "loop-test-signing-key-0123456789",
    }
    host = HostProcess("--workers", "1", env=env)
    try:
        client = HttpClient(host.base)
        texts = new_word_tweets(80)
        answer = client.request("POST", "/api/predict", {"texts": texts})
        assert answer.status == 200, answer.body[:300]
        for index, (text, prediction) in enumerate(zip(texts, answer.json()["predictions"], strict=True)):
            label = truth(index, prediction["label"])
            body = {
                "prediction_id": prediction["prediction_id"],
                "text": text,
                "predicted_label": prediction["label"],
                "correct": prediction["label"] == label,
            }
            sent = client.request("POST", "/api/feedback", body)
            assert sent.status == 202 and sent.json()["matched_prediction"] is True, sent.body[:300]
    finally:
        host.stop()
    feedback = root / "feedback.csv"
    status, output = cli("feedback-pull", "--out", feedback, "--connection-string", store.connection_string)
    assert status == 0, output
    status, output = cli(
        "train", "--data", root.parent / "train.csv", "--feedback", feedback, "--candidates", "baseline",
        "--out", root / "run", "--export", root / "challenger.onnx",
    )  # fmt: skip
    assert status == 0, output
    status, output = cli(
        "compare", "--champion", champion, "--challenger", root / "challenger.onnx", "--feedback", feedback,
        "--test", root.parent / "test.csv", "--out", root / "comparison",
    )  # fmt: skip
    assert status in (0, 1), output
    return status, json.loads((root / "comparison" / "comparison.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loop")
    write_labelled_csv(root / "train.csv", 3_000, seed=41)
    write_labelled_csv(root / "test.csv", 2_000, seed=42)
    return train_baseline(root / "train.csv", root / "run", root / "champion.onnx")


def test_feedback_on_a_new_word_makes_a_challenger_that_passes_the_gate(champion, azurite):  # noqa: F811
    azurite.delete_tables()
    root = champion.parent / "agreeing"
    # Every user reads the new word the other way from the champion.
    other = {"negative": "positive", "positive": "negative"}
    status, report = run_loop(root, azurite, champion, lambda index, predicted: other[predicted])
    print(json.dumps(report["feedback"]), json.dumps(report["test_sets"])[:600])
    assert status == 0 and report["passed"] is True, report["failures"]
    held_out = report["feedback"]
    assert held_out["champion_errors"] >= 5, (
        "the champion must get the new word wrong for the test to mean anything"
    )
    assert held_out["fixed_share"] >= 0.5


def test_contradictory_feedback_is_stopped_by_the_gate(champion, azurite):  # noqa: F811
    azurite.delete_tables()
    root = champion.parent / "contradictory"
    # Half the users say one thing, half the other, about tweets that differ only in made-up letters.
    status, report = run_loop(root, azurite, champion, lambda index, _: ("negative", "positive")[index % 2])
    print(json.dumps(report["feedback"]), report["failures"])
    assert status == 1 and report["passed"] is False
    assert any(failure.startswith("held-out feedback") for failure in report["failures"])
