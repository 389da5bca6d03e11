"""PNG figures for reports and the model card (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from serving.contract import LABELS


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def comparison_chart(
    rows: Sequence[Mapping], path: Path, metrics=("accuracy", "f1", "roc_auc"), title: str = ""
) -> Path:
    """Grouped horizontal bars: one group per candidate, one bar per metric (validation figures)."""
    names = [str(row["candidate"]) for row in rows]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.55 * len(names) * max(1, len(metrics)) / 2))
    height = 0.8 / len(metrics)
    positions = np.arange(len(names))
    for index, metric in enumerate(metrics):
        values = [float(row.get(metric) or 0.0) for row in rows]
        bars = ax.barh(positions + index * height, values, height=height, label=metric)
        for bar, value in zip(bars, values, strict=True):
            ax.text(
                value + 0.003, bar.get_y() + bar.get_height() / 2, f"{value:.3f}", va="center", fontsize=7
            )
    ax.set_yticks(positions + height * (len(metrics) - 1) / 2, names)
    ax.invert_yaxis()
    lowest = min((float(row.get(m) or 1.0) for row in rows for m in metrics), default=0.5)
    ax.set_xlim(max(0.0, lowest - 0.1), 1.02)
    ax.set_xlabel("score")
    ax.set_title(title or "Candidates on the validation split")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def confusion_matrix_plot(matrix, path: Path, title: str = "") -> Path:
    """Counts with row-normalised shading (rows = true label)."""
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            color = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n{shares[i, j]:.1%}", ha="center", va="center", color=color)
    ax.set_xticks([0, 1], LABELS)
    ax.set_yticks([0, 1], LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix", fontsize=10)
    return _save(fig, path)


def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "") -> Path:
    """One ROC curve per named (labels, negative_probability) pair; positive class = 1."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, (labels, negative_probability) in curves.items():
        labels = np.asarray(labels)
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, 1.0 - np.asarray(negative_probability, dtype=float))
        auc = float(np.trapezoid(tpr, fpr))
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC curve", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def test_set_chart(results: Mapping[str, Mapping[str, Mapping]], path: Path, metric: str = "f1") -> Path:
    """Bars per test set comparing models (e.g. baseline vs production) on one metric."""
    test_sets = list(next(iter(results.values())).keys()) if results else []
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(1, len(results))
    positions = np.arange(len(test_sets))
    for index, (model_name, per_set) in enumerate(results.items()):
        values = [float(per_set[name].get(metric) or 0.0) for name in test_sets]
        bars = ax.bar(positions + index * width, values, width=width, label=model_name)
        for bar, value in zip(bars, values, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, value + 0.005, f"{value:.3f}", ha="center", fontsize=7)
    ax.set_xticks(positions + width * (len(results) - 1) / 2, test_sets, fontsize=8)
    ax.set_ylim(0.5, 1.02)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per test set")
    ax.legend(fontsize=8)
    return _save(fig, path)
