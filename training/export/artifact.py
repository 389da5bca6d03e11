"""The model file: graph + metadata, checked against scikit-learn before a byte is written.

``export_model`` builds the graph with the builder registered for the model's family
(``training.export.families``), stores the metadata as JSON documents (``serving.contract`` names the
keys), scores every given text plus ``ADVERSARIAL_TEXTS`` with onnxruntime exactly as serving does, and
writes the file atomically only when every probability matches scikit-learn within the tolerance.
``train`` leaves the metadata of its model beside it (``<stem>.metadata.json``) so a later ``export`` of
that model keeps its fingerprint and test metrics.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from serving import contract
from serving.normalizer import NORMALIZER_VERSION, normalize
from serving.runtime import negative_probabilities
from training.export.families import exporter_for
from training.metrics import negative_probability
from training.modeling.text_model import describe

LABELS = list(contract.LABELS)
METADATA_SUFFIX = ".metadata.json"

ADVERSARIAL_TEXTS: list[str] = [
    "",
    "   ",
    "@united http://t.co/abc #",
    "😡😡😡",
    "✈️🙂",
    "😂😂😂 😭",
    "東京行きのフライトが遅れた",
    "Рейс задержали на пять часов",
    "رحلة متأخرة جدا",
    "מטוס",
    "Ünïcödé çafé naïve résumé",
    "!!!???!!!",
    "?",
    "a",
    "x " * 5_000,
    "delayed " * 1_250,
    "w" * 10_000,
    "supercalifragilisticexpialidocious" * 100,
    "the the the the the the the the the the",
    "not good not good not good not good",
    "thank you thank you thank you",
    "late late late late late late late late bag lost lost lost",
    ":) :( :-) :-( <3 </3 :D D: ;)",
    "I looooooove this airline!!!!",
    "worst flight ever, lost my bag @AirParadis http://bit.ly/xyz",
    "great crew, smooth flight, thank you @AirParadis!",
    "\t\n\r tabs\tand\nnewlines\r\n",
    "&amp; &lt;3 &quot;quoted&quot; &#39;",
    "\x00\x1f control \x7f chars",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 _",
]


class ParityError(AssertionError):
    """onnxruntime and scikit-learn disagree beyond the tolerance: the file must not be written."""


def to_onnx(model, metadata: dict) -> onnx.ModelProto:
    """Graph (from the builder registered for the model's family) + metadata. Every metadata value is
    stored as a JSON document; ``model_version`` is the creation date and the first 8 hex digits of the
    graph bytes' sha256, so any change of weights, vocabulary or structure gives a new version."""
    onnx_model = exporter_for(model)(model)
    values = {
        "normalizer_version": NORMALIZER_VERSION,
        "training_data_fingerprint": None,
        "test_metrics": {},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **metadata,
    }
    values.update(
        threshold=float(model.threshold),
        labels=LABELS,
        # What the graph has, so a family without explanations declares [] and still serves.
        explanation_outputs=[o.name for o in onnx_model.graph.output if o.name in contract.TERM_OUTPUTS],
        coverage_outputs=[
            o.name for o in onnx_model.graph.output if o.name in contract.NGRAM_COVERAGE_OUTPUTS
        ],
        n_features=int(model.n_features_),
        params=describe(model),
    )
    digest = hashlib.sha256(onnx_model.graph.SerializeToString(deterministic=True)).hexdigest()[:8]
    created = dt.datetime.fromisoformat(str(values["created_at"]))
    values["model_version"] = f"{created:%Y.%m.%d}-{digest}"
    helper.set_model_props(
        onnx_model, {key: json.dumps(value, default=_plain) for key, value in values.items()}
    )
    return onnx_model


def _plain(value):
    """numpy scalars and arrays (e.g. from a grid search's best parameters) as JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")


def open_session(onnx_path_or_bytes) -> ort.InferenceSession:
    """An onnxruntime session on the CPU provider from a path, bytes or an in-memory ModelProto."""
    if isinstance(onnx_path_or_bytes, onnx.ModelProto):
        onnx_path_or_bytes = onnx_path_or_bytes.SerializeToString()
    if isinstance(onnx_path_or_bytes, Path):
        onnx_path_or_bytes = str(onnx_path_or_bytes)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the overridable ``explain`` initializer is intended, not a warning
    return ort.InferenceSession(onnx_path_or_bytes, options, providers=["CPUExecutionProvider"])


def score(session: ort.InferenceSession, normalized_texts: list[str]) -> np.ndarray:
    """Negative probabilities from the graph, scored the way serving scores them."""
    return negative_probabilities(session, normalized_texts).astype(np.float64)


def check_parity(model, onnx_path_or_bytes, texts, tolerance: float = 1e-5) -> dict:
    """Compare onnxruntime with scikit-learn on ``texts`` + ``ADVERSARIAL_TEXTS`` (all normalized
    first). Raises ``ParityError`` when any probability differs by more than ``tolerance``."""
    normalized = [normalize(text) for text in [*texts, *ADVERSARIAL_TEXTS]]
    expected = negative_probability(model, normalized)
    actual = score(open_session(onnx_path_or_bytes), normalized)
    difference = np.abs(actual - expected)
    difference[np.isnan(difference)] = np.inf
    worst = int(np.argmax(difference))
    report = {
        "texts": len(normalized),
        "adversarial_texts": len(ADVERSARIAL_TEXTS),
        "max_abs_difference": float(difference[worst]),
        "tolerance": tolerance,
        "label_flips": int(np.sum((expected >= model.threshold) != (actual >= model.threshold))),
    }
    if not difference[worst] <= tolerance:
        raise ParityError(
            f"onnxruntime and scikit-learn differ by {difference[worst]:.3g} (> {tolerance:g}) on text "
            f"{worst} {normalized[worst][:80]!r}: onnx {actual[worst]:.9f}, sklearn {expected[worst]:.9f}"
        )
    return report


def export_model(model, path, parity_texts, metadata: dict) -> dict:
    """Build the graph, check parity, and only then write ``path`` (atomically)."""
    onnx_model = to_onnx(model, metadata)
    data = onnx_model.SerializeToString()
    parity = check_parity(model, data, parity_texts)
    path = Path(path)
    write_atomically(path, data)
    properties = {p.key: json.loads(p.value) for p in onnx_model.metadata_props}
    return {
        "path": str(path),
        "bytes": len(data),
        "model_version": properties["model_version"],
        "n_features": properties["n_features"],
        "parity": parity,
    }


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder: a served model file is
    never seen half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def metadata_path(model_path: Path | str) -> Path:
    """``reports/train/model.joblib`` -> ``reports/train/model.metadata.json``: where ``train`` leaves
    the metadata of its model for ``export``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + METADATA_SUFFIX)


def write_metadata(model_path: Path | str, metadata: dict) -> Path:
    """Write ``metadata`` beside the saved model (see ``metadata_path``)."""
    path = metadata_path(model_path)
    path.write_text(json.dumps(metadata, indent=2, default=_plain), encoding="utf-8")
    return path


def read_parity_texts(path: Path) -> list[str]:
    """Tweet files (CSV, JSON, Sentiment140, .gz/.zip) through the project reader; anything else is
    read as one raw text per line."""
    if path.suffix.lower() in {".csv", ".json", ".gz", ".zip"}:
        from training.data import read_tweets

        return list(read_tweets(path).texts)
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
