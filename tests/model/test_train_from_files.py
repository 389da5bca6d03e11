"""``train`` from the user's own files (no labelled tweet folder), with feedback, and its --export guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from serving.normalizer import normalize
from serving.runtime import SentimentModel
from tests.tweet_factory import tweets, write_labelled, write_labelled_csv, write_sentiment140
from training.cli import app
from training.dataset import build_dataset, held_out_split
from training.feedback import HOLDOUT_SET, is_held_out
from training.modeling.text_model import TweetSentimentModel


def invoke(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_train_and_export_from_a_single_sentiment140_file(tmp_path):
    kaggle = write_sentiment140(tmp_path / "training.1600000.processed.noemoticon.csv", 600, seed=3)
    out, onnx_path = tmp_path / "run", tmp_path / "models" / "challenger.onnx"
    result = invoke(
        "train", "--data", kaggle, "--candidates", "baseline", "--out", out, "--export", onnx_path
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    recipe = summary["dataset_report"]["recipe"]
    assert recipe["train_files"] == [kaggle.name] and recipe["external_tests"] == {}
    splits = summary["dataset_report"]["splits"]
    assert splits["train"]["rows"] + splits["validation"]["rows"] + splits["test"]["rows"] == 600
    assert splits["test"]["rows"] == 60 and 59 <= splits["validation"]["rows"] <= 61  # 10 % each
    assert summary["dataset_report"]["leakage_check"].startswith("passed")
    assert set(summary["test_metrics"]) == {"test"}
    model = SentimentModel.load(onnx_path)  # the service could serve it
    assert model.metadata["training_data_fingerprint"] == summary["training_data_fingerprint"]
    # The card names the file, not the folder it was in on this machine.
    card = (onnx_path.parent / "README.md").read_text(encoding="utf-8")
    assert "--data " + kaggle.name in card and "--data " + str(kaggle) not in card

    # A second export to the same path is refused before any training, and the file is left alone.
    before = onnx_path.read_bytes()
    again = invoke("train", "--data", kaggle, "--candidates", "baseline", "--out", out, "--export", onnx_path)
    assert again.exit_code == 2 and "--replace" in again.output
    assert onnx_path.read_bytes() == before


def test_unusable_data_is_a_clear_error_naming_what_is_accepted(tmp_path):
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "notes.txt").write_text("hello\n", encoding="utf-8")
    result = invoke("train", "--data", unknown, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "holds no tweet file" in result.output and "'label,text' header" in result.output

    (unknown / "tweets.csv").write_text("when,what\n1,hello\n", encoding="utf-8")
    result = invoke("train", "--data", unknown, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "unrecognised format" in result.output

    result = invoke("train", "--data-dir", unknown, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "lacks" in result.output and "--data FILE" in result.output
    assert invoke("train", "--out", tmp_path / "run").exit_code == 2


def test_feedback_rows_train_weighted_and_their_held_out_part_stays_out(tmp_path):
    pool = write_labelled_csv(tmp_path / "pool.csv", 400, seed=1)
    pool_texts, pool_labels = tweets(400, seed=1)
    # Feedback: 30 new tweets plus 10 pool tweets with the label corrected (the user's word wins).
    new_texts, new_labels = tweets(30, seed=77)
    corrected = [(1 - label, text) for text, label in zip(pool_texts[:10], pool_labels[:10], strict=True)]
    feedback = write_labelled(
        tmp_path / "feedback.csv", [*zip(new_labels, new_texts, strict=True), *corrected]
    )

    dataset = build_dataset([pool], {}, progress=False, feedback_file=feedback, feedback_weight=3.0)
    held = dataset.external[HOLDOUT_SET]
    expected_held = {normalize(t) for t in [*new_texts, *pool_texts[:10]] if is_held_out(normalize(t))}
    assert set(held.texts) == expected_held and 0 < len(held.texts) < 40
    every_split = [dataset.train, dataset.validation, dataset.test]
    assert not expected_held & {text for split in every_split for text in split.texts}
    # compare reads the same held-out part from the file.
    assert set(held_out_split(feedback).texts) == expected_held

    weight = dict(zip(dataset.train.texts, dataset.train.weights.tolist(), strict=True))
    label = dict(zip(dataset.train.texts, dataset.train.labels.tolist(), strict=True))
    for text, true in [*zip(new_texts, new_labels, strict=True), *((t, y) for y, t in corrected)]:
        key = normalize(text)
        if key not in expected_held:
            assert weight[key] == 3.0 and label[key] == true
    assert sum(w == 3.0 for w in weight.values()) == 40 - len(expected_held)
    assert set(weight.values()) == {1.0, 3.0}
    assert dataset.report["splits"]["train"]["from_feedback"] == 40 - len(expected_held)
    without = build_dataset([pool], {}, progress=False)
    assert without.train.weights is None and without.fingerprint != dataset.fingerprint


def test_sample_weight_moves_the_model_toward_the_heavy_rows():
    texts, labels = tweets(300, seed=4)
    texts = [normalize(t) for t in texts]
    labels = np.asarray(labels)
    probe = normalize("the flight was smooth and the crew friendly")
    flipped_texts = [*texts, *[probe] * 3]
    flipped_labels = np.concatenate([labels, [0, 0, 0]])  # the users say: negative
    plain = TweetSentimentModel(nb_weighting=True).fit(flipped_texts, flipped_labels)
    weights = np.concatenate([np.ones(len(texts)), [50.0, 50.0, 50.0]])
    heavy = TweetSentimentModel(nb_weighting=True).fit(flipped_texts, flipped_labels, sample_weight=weights)
    assert heavy.negative_probability([probe])[0] > plain.negative_probability([probe])[0] + 0.2
    with pytest.raises(ValueError, match="sample_weight"):
        TweetSentimentModel().fit(texts, labels, sample_weight=np.zeros(len(texts)))


def test_export_refuses_an_existing_file_before_reading_any_data(tmp_path):
    served = tmp_path / "sentiment.onnx"
    served.write_bytes(b"the served model")
    result = invoke("train", "--data", tmp_path / "absent.csv", "--export", served)
    assert result.exit_code == 2 and "exists" in result.output and "--replace" in result.output
    assert served.read_bytes() == b"the served model"
    # With --replace the guard lets the run go on (here to the missing data, a different error).
    replaced = invoke("train", "--data", tmp_path / "absent.csv", "--export", served, "--replace")
    assert replaced.exit_code == 2 and "absent.csv does not exist" in replaced.output


def test_user_files_join_the_folder_recipe(tmp_path):
    from tests.tweet_factory import write_shared_layout
    from training.dataset import training_recipe

    folder = write_shared_layout(tmp_path / "data", rows=20)
    own = write_labelled_csv(tmp_path / "mine" / "own.csv", 20, seed=8)
    recipe = training_recipe(folder, [own.parent])
    assert recipe["train_files"][-1] == own and len(recipe["external_tests"]) == 4
    assert training_recipe(None, [own]) == {
        "train_files": [own],
        "external_tests": {},
        "train_only_files": [],
    }
    with pytest.raises(ValueError, match="--data-dir"):
        training_recipe(None, [own], with_headtail=True)


def test_the_feedback_split_depends_on_the_text_and_seed_only():
    texts = [f"tweet number {i}" for i in range(2_000)]
    held = [is_held_out(t) for t in texts]
    assert 0.25 < sum(held) / len(held) < 0.35
    assert held == [is_held_out(t) for t in texts]
    assert held != [is_held_out(t, seed=14) for t in texts]
    assert not any(is_held_out(t, share=0.0) for t in texts)


def test_held_out_split_of_a_feedback_file_path(tmp_path: Path):
    feedback = write_labelled(tmp_path / "f.csv", [(0, "late again"), (1, "thanks crew"), (0, "@user")])
    split = held_out_split(feedback, share=0.99)
    assert split.name == HOLDOUT_SET and sorted(split.raw_texts) == ["@user", "late again", "thanks crew"]
    assert held_out_split(feedback, share=0.0).texts == []
