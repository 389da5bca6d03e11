"""``evaluate`` on a tiny generated test file, with a small model saved as .joblib and as .onnx."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest
from typer.testing import CliRunner

from serving.normalizer import normalize
from tests.tweet_factory import tweets, write_labelled_csv
from training.cli import app  # the subcommand as ``python -m training evaluate`` runs it
from training.evaluate import evaluate_files, load_model
from training.export.artifact import export_model
from training.metrics import binary_metrics
from training.modeling.text_model import TweetSentimentModel


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """One small model, threshold 0.45, saved both ways; and a labelled test file."""
    folder = tmp_path_factory.mktemp("models")
    texts, labels = tweets(400, seed=21)
    model = TweetSentimentModel(word_max_features=500, threshold=0.45).fit(
        [normalize(t) for t in texts], labels
    )
    joblib.dump(model, folder / "model.joblib")
    test_file = write_labelled_csv(folder / "test.csv", 150, seed=22)
    export_model(model, folder / "model.onnx", parity_texts=texts[:50], metadata={"test_metrics": {}})
    return model, folder, test_file


def test_joblib_and_onnx_give_the_same_figures_as_the_metrics_module(saved_models, tmp_path):
    model, folder, test_file = saved_models
    texts, labels = tweets(150, seed=22)
    expected = binary_metrics(
        np.array(labels), model.negative_probability([normalize(t) for t in texts]), 0.45
    )
    for kind in ("joblib", "onnx"):
        loaded = load_model(folder / f"model.{kind}")
        assert loaded.threshold == pytest.approx(0.45)
        summary = evaluate_files(loaded, [test_file], tmp_path / kind)
        result = summary["results"]["test"]
        for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "f1_negative", "f1_positive"):
            assert result[key] == pytest.approx(expected[key], abs=1e-9), (kind, key)
        assert result["confusion_matrix"] == expected["confusion_matrix"]
        assert json.loads((tmp_path / kind / "summary.json").read_text())["results"]["test"]["n"] == 150
        assert (tmp_path / kind / "confusion_test.png").stat().st_size > 3_000
        assert (tmp_path / kind / "roc_test.png").stat().st_size > 3_000
        assert "| test |" in (tmp_path / kind / "summary.md").read_text()


def test_command_measures_several_files_and_draws_one_roc_for_all(saved_models, tmp_path):
    _, folder, test_file = saved_models
    other = write_labelled_csv(tmp_path / "other.csv", 80, seed=23)
    out = tmp_path / "report"
    outcome = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model",
            str(folder / "model.onnx"),
            "--test",
            str(test_file),
            "--test",
            str(other),
            "--out",
            str(out),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"test", "other"}
    assert summary["model_version"] and summary["kind"] == "onnx"
    assert (out / "roc_all.png").is_file()


@pytest.mark.parametrize(
    ("model_name", "message"),
    [("missing.onnx", "does not exist"), ("model.txt", "expected a .onnx or .joblib")],
)
def test_command_rejects_a_bad_model_file_clearly(tmp_path, model_name, message):
    (tmp_path / "model.txt").write_text("not a model")
    test_file = write_labelled_csv(tmp_path / "t.csv", 10, seed=1)
    outcome = CliRunner().invoke(
        app,
        ["evaluate", "--model", str(tmp_path / model_name), "--test", str(test_file), "--out", str(tmp_path)],
    )
    assert outcome.exit_code == 2
    assert message in outcome.output
