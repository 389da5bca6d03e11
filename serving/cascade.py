"""The second opinion: a sentence encoder re-reads the tweets the n-gram model is unsure of.

The n-gram model scores every text. Those whose probability falls in the uncertain band stored with the
cascade file go, most uncertain first and at most ``quota`` per request, through one ONNX session: the
encoder (multilingual-e5-small), its sentiment head and a fusion head that also takes the n-gram
probability. The rest keep the n-gram answer, and each prediction says which happened. The quota and the
encoder's token budget bound the work a request can cause, whatever its texts.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from serving.contract import CASCADE_FILE_NAME, NGRAM_VERSION_KEY
from serving.encoder import EncoderTokenizer

NGRAM_INPUT = "ngram_probability"
PROBABILITY_OUTPUT = "negative_probability"
VERSION_KEY = "model_version"  # covers both parts: see training/export/cascade.py
BAND_KEY = "band"
THRESHOLD_KEY = "threshold"
QUOTA_KEY = "max_per_request"
ENCODER_PATH_SETTING = "MODEL_ENCODER_PATH"
DEFAULT_ENCODER_PATH = f"model/{CASCADE_FILE_NAME}"
# Probabilities are kept this far off 0 and 1 before their log-odds are taken (here and in the graph).
EPSILON = 1e-6
OFF_VALUES = {"off", "none", "false", "0"}

# How a prediction was decided (the ``encoder`` field of an answer).
USED = "used"  # in the band: the fused probability is the answer
SKIPPED = "skipped"  # in the band, past the request's quota: the n-gram answer stands
NOT_NEEDED = "not_needed"  # outside the band: the n-gram model is confident
OFF = "off"  # the service has no cascade

_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w{1,50}")
_SPACE = re.compile(r"\s+")


class CascadeLoadError(RuntimeError):
    """The cascade file is missing, unreadable, or was fitted with another n-gram model."""


def encoder_text(raw: str, max_chars: int) -> str:
    """What the encoder reads (training and serving alike): HTML entities decoded, links and user names
    replaced by placeholders (they carry no sentiment and waste tokens), spaces collapsed, cut to
    ``max_chars`` (past the token budget anyway)."""
    text = html.unescape(raw[: max_chars * 2])
    text = _MENTION.sub("@user", _URL.sub("http", text))
    return _SPACE.sub(" ", text).strip()[:max_chars]


class Cascade:
    """One session over the fused graph, the tokenizer from its metadata, the band and the quota."""

    __slots__ = (
        "_centre",
        "band",
        "max_chars",
        "metadata",
        "ngram_version",
        "quota",
        "session",
        "tokenizer",
        "version",
    )

    def __init__(self, session: ort.InferenceSession, metadata: dict[str, Any]) -> None:
        self.session = session
        self.metadata = metadata
        self.version: str = str(metadata[VERSION_KEY])
        self.ngram_version: str = str(metadata[NGRAM_VERSION_KEY])
        low, high = metadata[BAND_KEY]
        self.band: tuple[float, float] = (float(low), float(high))
        self.quota: int = int(metadata[QUOTA_KEY])
        self._centre = _logit(float(metadata[THRESHOLD_KEY]))
        self.tokenizer = EncoderTokenizer.from_metadata(metadata)
        # A token is rarely longer than 16 characters: more text than this cannot reach the budget.
        self.max_chars = 16 * self.tokenizer.max_tokens

    @classmethod
    def load(cls, path: Path, ngram_version: str, options: ort.SessionOptions) -> Cascade:
        """Open ``path`` and check it was fitted with the n-gram model being served."""
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises several unrelated types for unreadable files
            raise CascadeLoadError(f"cascade file {path.name} cannot be read: {error}") from None
        names = {i.name for i in session.get_inputs()}
        if NGRAM_INPUT not in names or PROBABILITY_OUTPUT not in {o.name for o in session.get_outputs()}:
            raise CascadeLoadError(f"{path.name} is an encoder without the cascade heads")
        raw = session.get_modelmeta().custom_metadata_map
        try:
            metadata = {key: json.loads(value) for key, value in raw.items()}
            cascade = cls(session, metadata)
        except (KeyError, TypeError, ValueError) as error:
            raise CascadeLoadError(f"cascade metadata unusable: {error!r}") from None
        if cascade.ngram_version != ngram_version:
            raise CascadeLoadError(
                f"cascade fitted with n-gram model {cascade.ngram_version}, serving {ngram_version}: "
                "refit the cascade (python -m training cascade) or deploy the matching pair"
            )
        return cascade

    def plan(self, probabilities: Sequence[float]) -> tuple[list[int], list[int]]:
        """(rows to re-read, rows in the band past the quota): the band's rows, closest to the threshold
        (in log-odds, as the band was chosen) first."""
        low, high = self.band
        inside = [row for row, p in enumerate(probabilities) if low <= p <= high]
        if len(inside) <= self.quota:
            return inside, []
        centre = self._centre
        inside.sort(key=lambda row: abs(_logit(probabilities[row]) - centre))
        return inside[: self.quota], inside[self.quota :]

    def rescore(self, raw_texts: Sequence[str], probabilities: Sequence[float]) -> list[float]:
        """The fused probability of each text, given the n-gram model's."""
        if not raw_texts:
            return []
        texts = [encoder_text(text, self.max_chars) for text in raw_texts]
        ids, mask, _ = self.tokenizer.tokenize(texts)
        feed = {
            "input_ids": ids,
            "attention_mask": mask,
            NGRAM_INPUT: np.asarray(probabilities, dtype=np.float32),
        }
        fused: list[float] = self.session.run([PROBABILITY_OUTPUT], feed)[0].tolist()
        return [p if math.isfinite(p) else q for p, q in zip(fused, probabilities, strict=True)]


def _logit(p: float) -> float:
    q = min(max(p, EPSILON), 1.0 - EPSILON)
    return math.log(q / (1.0 - q))


def configured_encoder_path(app_root: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """``MODEL_ENCODER_PATH`` (relative to the app folder; ``off`` disables the cascade); None when off."""
    value = (environ if environ is not None else os.environ).get(ENCODER_PATH_SETTING, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    path = Path(value or DEFAULT_ENCODER_PATH)
    return path if path.is_absolute() else app_root / path
