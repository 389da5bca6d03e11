"""Generated labelled files -> ``train`` (reduced candidates) -> ONNX -> ``evaluate``, as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.contract import read_metadata
from tests.tweet_factory import write_shared_layout
from training import evaluate
from training.cli import app
from training.dataset import SHARED_EXTERNAL


def _metadata(path: Path) -> dict:
    return read_metadata(path, strict=False)


@pytest.mark.slow
def test_train_export_evaluate_on_a_generated_folder(tmp_path):
    data = write_shared_layout(tmp_path / "data", rows=160)
    report, model = tmp_path / "report", tmp_path / "model" / "sentiment.onnx"
    arguments = ["train", "--data-dir", str(data), "--candidates", "baseline", "--candidates", "nb_logreg"]
    arguments += [
        "--out",
        str(report),
        "--mlflow-uri",
        (tmp_path / "mlruns").as_uri(),
        "--export",
        str(model),
    ]
    outcome = CliRunner().invoke(app, arguments)
    assert outcome.exit_code == 0, outcome.output

    with (report / "perf_models.csv").open(encoding="utf-8") as handle:
        assert [row["candidate"] for row in csv.DictReader(handle)] == ["baseline", "nb_logreg"]
    summary = json.loads((report / "summary.json").read_text())
    metadata = _metadata(model)
    assert metadata["threshold"] == pytest.approx(summary["threshold"])
    assert metadata["training_data_fingerprint"] == summary["training_data_fingerprint"]
    assert set(metadata["test_metrics"]) == {"test", *SHARED_EXTERNAL}
    assert metadata["n_features"] == summary["n_features"] > 0
    card = (tmp_path / "model" / "README.md").read_text()
    assert "| baseline" in card and "| Sentiment140 manual test |" in card
    assert "STS-Gold" in card and "--candidates nb_logreg" in card  # the reproducing command
    for figure in ("candidates_validation", "roc_test_sets", "confusion_sts_gold", "vs_baseline_f1"):
        assert (tmp_path / "model" / "figures" / f"{figure}.png").stat().st_size > 3_000
    # The card re-rendered from the run's reports alone is the card the run wrote.
    outcome = CliRunner().invoke(
        app, ["card", "--report", str(report), "--card", str(tmp_path / "model" / "again.md")]
    )
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "model" / "again.md").read_text() == card

    # ``export`` of the model ``train`` saved reads the metadata ``train`` left beside it: same graph
    # (same version suffix), same fingerprint and test figures as the file ``train --export`` wrote.
    again = tmp_path / "again.onnx"
    outcome = CliRunner().invoke(
        app, ["export", "--model", str(report / "model.joblib"), "--out", str(again)]
    )
    assert outcome.exit_code == 0, outcome.output
    exported_again = _metadata(again)
    assert exported_again["model_version"].split("-")[1] == metadata["model_version"].split("-")[1]
    for key in ("training_data_fingerprint", "test_metrics", "threshold", "n_features"):
        assert exported_again[key] == metadata[key], key

    # The exported file, scored by plain onnxruntime, reproduces train's figures on an external set.
    sts = data / SHARED_EXTERNAL["sts_gold"]
    outcome = CliRunner().invoke(
        app, ["evaluate", "--model", str(model), "--test", str(sts), "--out", str(tmp_path / "e")]
    )
    assert outcome.exit_code == 0, outcome.output
    measured = json.loads((tmp_path / "e" / "summary.json").read_text())["results"]["sts_gold_binary"]
    for key in ("accuracy", "f1", "roc_auc"):
        assert measured[key] == pytest.approx(summary["test_metrics"]["sts_gold"][key], abs=1e-9)
        assert round(measured[key], 3) == metadata["test_metrics"]["sts_gold"][key]


@pytest.mark.slow
def test_same_data_and_seed_give_the_same_model(tmp_path):
    data = write_shared_layout(tmp_path / "data", rows=120)
    exported = []
    for run in ("a", "b"):
        arguments = [
            "train",
            "--data-dir",
            str(data),
            "--candidates",
            "baseline",
            "--out",
            str(tmp_path / run),
        ]
        arguments += [
            "--mlflow-uri",
            (tmp_path / "mlruns").as_uri(),
            "--export",
            str(tmp_path / run / "m.onnx"),
        ]
        assert CliRunner().invoke(app, arguments).exit_code == 0
        exported.append(json.loads((tmp_path / run / "export.json").read_text()))
    # The version hashes the graph (weights, vocabulary, threshold): equal graphs, equal suffix.
    assert exported[0]["model_version"].split("-")[1] == exported[1]["model_version"].split("-")[1]


def test_train_rejects_a_folder_without_the_expected_files_or_an_unknown_candidate(tmp_path):
    outcome = CliRunner().invoke(app, ["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")])
    assert outcome.exit_code == 2
    assert "lacks" in outcome.output
    arguments = [
        "train",
        "--data-dir",
        str(tmp_path),
        "--candidates",
        "xgboost",
        "--out",
        str(tmp_path / "r"),
    ]
    outcome = CliRunner().invoke(app, arguments)
    assert outcome.exit_code == 2
    assert "unknown ['xgboost']" in outcome.output


@pytest.mark.data
def test_committed_model_reproduces_its_recorded_figures(data_dir, repo_root):
    """The metadata's test metrics are what plain onnxruntime measures on the public test files."""
    model = repo_root / "model" / "sentiment.onnx"
    metadata = _metadata(model)
    loaded = evaluate.load_model(model)
    for name in ("sts_gold", "hcr_test"):
        from training.dataset import load_split

        split = load_split(data_dir / SHARED_EXTERNAL[name])
        from training.metrics import binary_metrics

        measured = binary_metrics(split.labels, loaded.negative_probability(split.texts), loaded.threshold)
        for key in ("accuracy", "f1", "roc_auc"):
            assert round(measured[key], 3) == pytest.approx(metadata["test_metrics"][name][key], abs=1e-3), (
                name
            )
    assert 300_000 <= metadata["n_features"] <= 600_000
    assert model.stat().st_size <= 50 * 1024 * 1024
