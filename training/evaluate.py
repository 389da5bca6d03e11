"""``evaluate``: measure any saved model on any labelled tweet file.

An ``.onnx`` file is scored the way serving scores it: plain onnxruntime on normalized texts, with the
threshold stored in its metadata. A ``.joblib`` file (``train`` writes one per run) is scored with
scikit-learn. Each test file gets its metrics, a confusion matrix and a ROC curve; a JSON and a
Markdown summary cover them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving import contract
from training.metrics import HEADLINE, binary_metrics
from training.reporting import plots


@dataclass
class LoadedModel:
    """What evaluation needs from a model file: its threshold and a scorer of normalized texts."""

    path: Path
    kind: str  # "onnx" or "joblib"
    threshold: float
    metadata: dict
    negative_probability: Callable[[Sequence[str]], np.ndarray]


def load_model(path: Path | str) -> LoadedModel:
    """Open an ``.onnx`` (onnxruntime) or ``.joblib`` (scikit-learn) model file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == ".onnx":
        from training.export.artifact import open_session, score

        session = open_session(path)
        metadata = contract.decode_metadata(session.get_modelmeta().custom_metadata_map, strict=False)
        threshold = float(metadata.get(contract.THRESHOLD, contract.DEFAULT_THRESHOLD))
        return LoadedModel(path, "onnx", threshold, metadata, lambda texts: score(session, list(texts)))
    if path.suffix == ".joblib":
        import joblib

        model = joblib.load(path)
        threshold = float(getattr(model, "threshold", contract.DEFAULT_THRESHOLD))
        metadata = {"params": {k: repr(v) for k, v in model.get_params().items()}}
        return LoadedModel(
            path, "joblib", threshold, metadata, lambda texts: model.predict_proba(list(texts))[:, 0]
        )
    raise ValueError(f"{path}: expected a .onnx or .joblib model file")


def evaluate_files(model: LoadedModel, test_files: Sequence[Path], out_dir: Path) -> dict:
    """Metrics and figures per test file, plus ``summary.json`` and ``summary.md`` in ``out_dir``."""
    from training.dataset import load_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results, curves = {}, {}
    for path in test_files:
        split = load_split(path)
        name = _unique(split.name, results)
        probabilities = model.negative_probability(split.texts)
        metrics = binary_metrics(split.labels, probabilities, model.threshold)
        metrics["file"] = str(path)
        metrics["confusion_matrix_png"] = str(
            plots.confusion_matrix_plot(
                metrics["confusion_matrix"], out_dir / f"confusion_{name}.png", title=name
            )
        )
        metrics["roc_curve_png"] = str(
            plots.roc_curves({name: (split.labels, probabilities)}, out_dir / f"roc_{name}.png")
        )
        results[name] = metrics
        curves[name] = (split.labels, probabilities)
    if len(curves) > 1:
        plots.roc_curves(curves, out_dir / "roc_all.png")
    summary = {
        "model": str(model.path),
        "kind": model.kind,
        "model_version": model.metadata.get("model_version"),
        "threshold": model.threshold,
        "results": results,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out_dir / "summary.md").write_text(markdown_summary(summary), encoding="utf-8")
    return summary


def _unique(name: str, taken: dict) -> str:
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    return candidate


def markdown_summary(summary: dict) -> str:
    """``summary.md``: one row per test file, then each confusion matrix."""
    columns = ("n", *HEADLINE, "f1_negative", "f1_positive")
    lines = [
        f"# Evaluation of `{summary['model']}`",
        "",
        f"Model version `{summary['model_version']}`, threshold {summary['threshold']:.2f} "
        "(negative when negative_probability >= threshold).",
        "",
        "| test file | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, metrics in summary["results"].items():
        cells = [
            str(metrics[c]) if c == "n" else "n/a" if metrics[c] is None else f"{metrics[c]:.3f}"
            for c in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, metrics in summary["results"].items():
        (tn, fp), (fn, tp) = metrics["confusion_matrix"]
        lines.append(f"- {name}: confusion (rows true neg/pos) [[{tn}, {fp}], [{fn}, {tp}]]")
    return "\n".join(lines) + "\n"
