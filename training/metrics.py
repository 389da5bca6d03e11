"""Classification metrics for the sentiment model, computed one way everywhere.

The model scores ``negative_probability`` (label 0 = negative, 1 = positive) and calls a text negative
when that probability reaches the threshold, exactly as serving does. Every report (candidate table,
model card, ``evaluate``) goes through :func:`binary_metrics`, so figures are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from serving.contract import LABELS


def negative_probability(model, texts: Sequence[str]) -> np.ndarray:
    """Column 0 of ``predict_proba`` on normalized texts: every candidate family answers it."""
    return np.asarray(model.predict_proba(list(texts)))[:, 0]


def predict_labels(negative_probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Serving's rule: negative (0) when ``negative_probability >= threshold``, else positive (1)."""
    return np.where(np.asarray(negative_probability) >= threshold, 0, 1).astype(np.int8)


def binary_metrics(labels: np.ndarray, negative_probability: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, ROC-AUC and the confusion matrix.

    ``precision``/``recall``/``f1`` without a suffix are the macro averages over both classes (the
    figure the targets use); per-class values carry the class name. ROC-AUC is computed on the
    positive score ``1 - negative_probability`` and is ``None`` when a single class is present.
    """
    y = np.asarray(labels).astype(int)
    p_neg = np.asarray(negative_probability, dtype=float)
    if y.shape != p_neg.shape:
        raise ValueError(f"{y.shape[0]} labels but {p_neg.shape[0]} scores")
    if y.size == 0:
        raise ValueError("no labelled texts to measure")
    predicted = predict_labels(p_neg, threshold)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=[0, 1], zero_division=0
    )
    result: dict = {
        "n": int(y.size),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1": float(f1_score(y, predicted, labels=[0, 1], average="macro", zero_division=0)),
        "roc_auc": float(roc_auc_score(y, 1.0 - p_neg)) if len(np.unique(y)) == 2 else None,
        "confusion_matrix": confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
    }
    for index, name in enumerate(LABELS):
        result[f"precision_{name}"] = float(precision[index])
        result[f"recall_{name}"] = float(recall[index])
        result[f"f1_{name}"] = float(f1[index])
        result[f"support_{name}"] = int(support[index])
    return result


def choose_threshold(
    labels: np.ndarray, negative_probability: np.ndarray, *, grid_step: float = 0.01
) -> float:
    """The threshold on ``negative_probability`` that maximises macro-F1 (ties: closest to 0.5).

    Used on the validation split only, never on a test set.
    """
    y = np.asarray(labels).astype(int)
    p_neg = np.asarray(negative_probability, dtype=float)
    candidates = np.round(np.arange(0.2, 0.8 + grid_step / 2, grid_step), 4)
    best_threshold, best_score = 0.5, -1.0
    for threshold in sorted(candidates, key=lambda t: (abs(t - 0.5), t)):
        score = f1_score(y, predict_labels(p_neg, threshold), labels=[0, 1], average="macro", zero_division=0)
        if score > best_score + 1e-12:
            best_threshold, best_score = float(threshold), float(score)
    return best_threshold


HEADLINE = ("accuracy", "precision", "recall", "f1", "roc_auc")


def headline(metrics: dict) -> dict:
    """The five figures every table shows, rounded for humans (3 decimals)."""
    return {key: None if metrics.get(key) is None else round(float(metrics[key]), 3) for key in HEADLINE}


# perf_models.csv (one row per candidate): train writes it, the model card reads its numbers back.
PERF_MEASURES = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "fit_time_s",
    "search_time_s",
    "scoring_time_s",
)
PERF_COUNTS = ("model_size_bytes", "n_features", "train_rows")
PERF_COLUMNS = (
    "candidate",
    "description",
    *PERF_MEASURES,
    *PERF_COUNTS,
    "search",
    "best_params",
    "exportable",
)
