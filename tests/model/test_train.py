"""Training: the metrics, the threshold rule, the winner rule, the candidate table and MLflow logging."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.tweet_factory import tweets, write_labelled_csv
from training.dataset import Split, build_dataset
from training.metrics import PERF_COLUMNS, binary_metrics, choose_threshold, predict_labels
from training.modeling.candidates import Candidate, all_candidates
from training.modeling.text_model import TweetSentimentModel
from training.modeling.train import CandidateResult, fit_candidate, run_training, select_winner

# ----------------------------------------------------------------------------------- metrics


def test_metrics_on_a_hand_computed_case():
    labels = np.array([0, 0, 1, 1])
    negative_probability = np.array([0.9, 0.4, 0.2, 0.6])  # predicted 0, 1, 1, 0
    metrics = binary_metrics(labels, negative_probability)
    assert metrics["accuracy"] == 0.5
    assert metrics["confusion_matrix"] == [[1, 1], [1, 1]]
    assert metrics["precision_negative"] == 0.5 and metrics["recall_positive"] == 0.5
    assert metrics["f1"] == 0.5
    # Positive scores 0.1, 0.6 (negatives) vs 0.8, 0.4 (positives): 3 of 4 pairs ordered right.
    assert metrics["roc_auc"] == 0.75


def test_metrics_per_class_differ_when_errors_are_one_sided():
    labels = np.array([0, 0, 0, 1])
    negative_probability = np.array([0.9, 0.8, 0.1, 0.2])  # predicted 0, 0, 1, 1
    metrics = binary_metrics(labels, negative_probability)
    assert metrics["precision_negative"] == 1.0 and metrics["recall_negative"] == pytest.approx(2 / 3)
    assert metrics["precision_positive"] == 0.5 and metrics["recall_positive"] == 1.0
    assert metrics["f1_negative"] == pytest.approx(0.8) and metrics["f1_positive"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert metrics["support_negative"] == 3 and metrics["support_positive"] == 1


def test_threshold_is_inclusive_for_negative_like_serving():
    assert predict_labels(np.array([0.5, 0.4999, 0.7]), 0.5).tolist() == [0, 1, 0]


def test_roc_auc_is_none_with_one_class_and_lengths_must_match():
    assert binary_metrics(np.array([1, 1]), np.array([0.2, 0.7]))["roc_auc"] is None
    with pytest.raises(ValueError, match="labels"):
        binary_metrics(np.array([1, 0]), np.array([0.2]))


def test_choose_threshold_finds_the_separating_value_closest_to_half():
    labels = np.array([0, 0, 1, 1])
    negative_probability = np.array([0.7, 0.65, 0.3, 0.62])  # 0.5 calls the last one negative
    threshold = choose_threshold(labels, negative_probability)
    assert threshold == pytest.approx(0.63)
    assert binary_metrics(labels, negative_probability, threshold)["f1"] == 1.0


# ----------------------------------------------------------------------------------- the winner rule


def _result(name: str, f1: float, auc: float, n_features: int, exportable: bool = True) -> CandidateResult:
    # Exportable = the family has a registered ONNX graph builder (the forest has none).
    candidate = Candidate(name, name, TweetSentimentModel if exportable else RandomForestClassifier)
    assert candidate.exportable is exportable
    return CandidateResult(
        candidate, None, {"f1": f1, "roc_auc": auc}, np.zeros(1), {"n_features": n_features}
    )


def test_winner_is_best_servable_macro_f1_in_the_feature_range_with_auc_breaking_ties():
    results = {
        "forest": _result("forest", 0.95, 0.99, 5_000, exportable=False),
        "small": _result("small", 0.90, 0.95, 50_000),
        "large_a": _result("large_a", 0.8801, 0.93, 500_000),
        "large_b": _result("large_b", 0.8798, 0.94, 400_000),
        "huge": _result("huge", 0.89, 0.96, 2_000_000),
    }
    assert select_winner(results) == "small"
    # large_a and large_b tie at 3 decimals: the higher ROC-AUC wins.
    assert select_winner(results, min_features=300_000, max_features=600_000) == "large_b"


def test_winner_falls_back_to_any_servable_candidate_when_none_fits_the_range():
    results = {"small": _result("small", 0.8, 0.9, 1_000), "tiny": _result("tiny", 0.7, 0.8, 100)}
    assert select_winner(results, min_features=300_000) == "small"
    with pytest.raises(ValueError, match="exported"):
        select_winner({"forest": _result("forest", 0.9, 0.9, 10, exportable=False)})


def test_exportable_candidates_are_the_families_with_a_graph_builder():
    exportable = {name for name, candidate in all_candidates().items() if candidate.exportable}
    assert exportable == {"baseline", "logreg_tuned", "nb_logreg"}


# ----------------------------------------------------------------------------------- fitting


def _split(name: str, count: int, seed: int) -> Split:
    texts, labels = tweets(count, seed)
    from serving.normalizer import normalize

    return Split(name, [normalize(t) for t in texts], np.array(labels, dtype=np.int8), texts)


def test_classifier_search_scores_every_setting_on_validation_and_keeps_the_best():
    train, validation = _split("train", 400, 1), _split("validation", 150, 2)
    candidate = all_candidates({"word_max_features": 2_000, "char_max_features": 2_000})["logreg_tuned"]
    result = fit_candidate(candidate, train, validation)
    grid_size = len(candidate.grid["C"]) * len(candidate.grid["class_weight"])
    assert len(result.search_rows) == grid_size
    best = max(result.search_rows, key=lambda r: (round(r["validation_f1"], 3), r["validation_roc_auc"]))
    assert {k: result.model.get_params()[k] for k in best["params"]} == best["params"]
    # The figures in the row are the fitted model's own validation figures.
    probabilities = result.model.predict_proba(validation.texts)[:, 0]
    assert result.row["f1"] == round(binary_metrics(validation.labels, probabilities)["f1"], 3)
    assert result.row["train_rows"] == 400 and result.row["n_features"] == result.model.n_features_


# ----------------------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tweets")
    pool = [write_labelled_csv(root / f"pool{i}.csv", 250, seed=i) for i in range(2)]
    external = {"sts_gold": write_labelled_csv(root / "sts.csv", 120, seed=9)}
    return build_dataset(pool, external, progress=False)


@pytest.mark.slow
def test_run_writes_one_row_per_candidate_and_logs_to_mlflow(small_dataset, tmp_path):
    store = tmp_path / "mlruns"
    result = run_training(
        small_dataset,
        candidates=["baseline", "nb_logreg", "random_forest"],
        out_dir=tmp_path / "report",
        mlflow_uri=store.as_uri(),
        production_params={"word_max_features": 1_000, "char_max_features": 1_000},
    )
    with (tmp_path / "report" / "perf_models.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["candidate"] for row in rows] == ["baseline", "nb_logreg", "random_forest"]
    assert tuple(rows[0].keys()) == PERF_COLUMNS
    for row in rows:
        for column in ("accuracy", "precision", "recall", "f1", "roc_auc", "fit_time_s", "scoring_time_s"):
            assert 0.0 <= float(row[column]) <= (1.0 if column in ("accuracy", "f1", "roc_auc") else 1e4)
        assert int(row["model_size_bytes"]) > 1_000
    assert (tmp_path / "report" / "candidates.png").stat().st_size > 5_000
    assert result.winner in {"baseline", "nb_logreg"}  # the forest cannot be served
    assert set(result.test_metrics) == {"test", "sts_gold"}
    # What ``export`` reads beside the saved model: the run's fingerprint, test figures and threshold.
    metadata = json.loads((tmp_path / "report" / "model.metadata.json").read_text(encoding="utf-8"))
    assert metadata["training_data_fingerprint"] == small_dataset.fingerprint
    assert metadata["threshold"] == result.threshold
    assert set(metadata["test_metrics"]) == {"test", "sts_gold"}
    assert metadata["test_metrics"]["sts_gold"]["n"] == result.test_metrics["sts_gold"]["n"]

    mlflow.set_tracking_uri(store.as_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("air-paradis-sentiment")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(run for run in runs if run.info.run_name == "train")
    assert parent.data.params["winner"] == result.winner
    assert parent.data.params["training_data_fingerprint"] == small_dataset.fingerprint
    assert parent.data.metrics["sts_gold.f1"] == pytest.approx(
        round(result.test_metrics["sts_gold"]["f1"], 3)
    )
    artifacts = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id)}
    assert {"perf_models.csv", "candidates.png", "summary.json"} <= artifacts
    children = {run.info.run_name: run for run in runs if run.info.run_name in {"baseline", "nb_logreg"}}
    assert children["nb_logreg"].data.params["nb_weighting"] == "True"
    assert "roc_auc" in children["baseline"].data.metrics
    assert sum(1 for run in runs if run.info.run_name.startswith("nb_logreg-")) == 6  # C x class weight
