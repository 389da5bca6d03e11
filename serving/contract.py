"""The model artifact contract: what an ONNX file must hold for the service to serve it.

One home for the names the exporter writes and everything else reads (the runtime, evaluation, the
package scripts, the HTTP layer, the OpenAPI document): the input and output tensors, the metadata keys,
the labels and how metadata is decoded. Imports only the standard library, so training tools and
packaging scripts can use it without loading a model runtime.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

INPUT_NAME = "text"
INPUT_TYPE = "tensor(string)"
# Optional bool scalar input with a default of false (an overridable initializer): models that declare it
# only compute the explanation outputs when it is fed true. Older models compute them on every run.
EXPLAIN_INPUT = "explain"
PROBABILITY_OUTPUT = "negative_probability"
# One entry per (text, term): the row of the text in the batch, the term as written, its signed weight.
TERM_OUTPUTS = ("term_row", "term_text", "term_weight")
OUTPUT_TYPES = {
    PROBABILITY_OUTPUT: "tensor(float)",
    "term_row": "tensor(int64)",
    "term_text": "tensor(string)",
    "term_weight": "tensor(float)",
    "ngram_known": "tensor(int64)",
    "ngram_total": "tensor(int64)",
}
# Per text: how many of its n-gram occurrences the vocabulary knows, and how many it has (the drift
# signal "unknown share"). Optional: only models that declare them in COVERAGE_OUTPUTS have them.
NGRAM_COVERAGE_OUTPUTS = ("ngram_known", "ngram_total")
# Labels in the model's order: [the class the probability is about, the other one].
LABELS = ("negative", "positive")
DEFAULT_THRESHOLD = 0.5
DEFAULT_MODEL_PATH = "model/sentiment.onnx"

# Metadata keys (``custom_metadata_map``; every value a JSON document).
MODEL_VERSION = "model_version"
NORMALIZER_VERSION_KEY = "normalizer_version"
THRESHOLD = "threshold"
LABELS_KEY = "labels"
N_FEATURES = "n_features"
TRAINING_DATA_FINGERPRINT = "training_data_fingerprint"
TEST_METRICS = "test_metrics"
CREATED_AT = "created_at"
PARAMS = "params"
# The explanation outputs the graph has: absent means all of TERM_OUTPUTS (models exported before the
# key existed), [] means a model without explanations, which still serves predictions.
EXPLANATION_OUTPUTS = "explanation_outputs"
# The n-gram coverage outputs the graph has: absent or [] means none (the runtime then reports no
# unknown share), else NGRAM_COVERAGE_OUTPUTS.
COVERAGE_OUTPUTS = "coverage_outputs"
# The model's negative-probability histogram on its validation split (10 counts over [0, 1)): the
# baseline of the score-drift alert.
VALIDATION_HISTOGRAM = "validation_histogram"
REQUIRED_METADATA = (MODEL_VERSION, NORMALIZER_VERSION_KEY, THRESHOLD, LABELS_KEY)
# The optional cascade file beside the model (``serving.cascade``): its metadata names the n-gram model it
# was fitted with, and its ``model_version`` is then the version the service answers under.
CASCADE_FILE_NAME = "encoder.onnx"
NGRAM_VERSION_KEY = "ngram_model_version"


class ContractError(ValueError):
    """The model's metadata or signature breaks the contract; the message says which part."""


def decode_metadata(raw: Mapping[str, str], *, strict: bool = True) -> dict[str, Any]:
    """JSON-decode every value. ``strict`` also checks the required keys and their types (what serving
    needs); tools that only report on a model pass ``strict=False`` and get undecodable values as text."""
    metadata: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            metadata[key] = json.loads(value)
        except ValueError:
            if strict and key in REQUIRED_METADATA:
                raise ContractError(f"metadata {key!r} is not a JSON document: {value[:80]!r}") from None
            metadata[key] = value
    if strict:
        check_metadata(metadata)
    return metadata


def check_metadata(metadata: Mapping[str, Any]) -> None:
    """Raise ``ContractError`` unless the required keys are present with usable values."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ContractError(f"metadata lacks {', '.join(missing)}")
    version = metadata[MODEL_VERSION]
    if not isinstance(version, str) or not version:
        raise ContractError("metadata 'model_version' must be a non-empty string")
    threshold = metadata[THRESHOLD]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ContractError(f"metadata 'threshold' must be a number in [0, 1], got {threshold!r}")
    labels = metadata[LABELS_KEY]
    if not (isinstance(labels, list) and len(labels) == 2 and all(isinstance(x, str) and x for x in labels)):
        raise ContractError(f"metadata 'labels' must be two names [negative, positive], got {labels!r}")
    outputs = metadata.get(EXPLANATION_OUTPUTS, list(TERM_OUTPUTS))
    if outputs not in ([], list(TERM_OUTPUTS)):
        raise ContractError(
            f"metadata 'explanation_outputs' must be [] or {list(TERM_OUTPUTS)}, got {outputs!r}"
        )
    coverage = metadata.get(COVERAGE_OUTPUTS, [])
    if coverage not in ([], list(NGRAM_COVERAGE_OUTPUTS)):
        raise ContractError(
            f"metadata 'coverage_outputs' must be [] or {list(NGRAM_COVERAGE_OUTPUTS)}, got {coverage!r}"
        )


def explanation_outputs(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The explanation outputs a model declares: none when it declares ``[]``, else all of them (models
    that predate the key; an invalid value is reported by ``check_metadata``)."""
    declared = metadata.get(EXPLANATION_OUTPUTS, TERM_OUTPUTS)
    return () if declared == [] else TERM_OUTPUTS


def coverage_outputs(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The n-gram coverage outputs a model declares (none for models that predate the key)."""
    return NGRAM_COVERAGE_OUTPUTS if metadata.get(COVERAGE_OUTPUTS) == list(NGRAM_COVERAGE_OUTPUTS) else ()


def paired_cascade_metadata(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata of the cascade file beside ``model_path`` (None when there is none): callers compare
    its ``NGRAM_VERSION_KEY`` with the model's version to know whether the service would pair them."""
    cascade = Path(model_path).parent / CASCADE_FILE_NAME
    return read_metadata(cascade, strict=False) if cascade.is_file() else None


def read_metadata(path: str | os.PathLike[str], *, strict: bool = True) -> dict[str, Any]:
    """The decoded metadata of an ONNX file (opens it with onnxruntime, which serving already has)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    return decode_metadata(session.get_modelmeta().custom_metadata_map, strict=strict)
