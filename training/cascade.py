"""Fit the cascade: the n-gram model reads every tweet, the sentence encoder re-reads the unsure ones.

Everything is chosen on the validation split (the n-gram model never trained on it); test sets are only
scored afterwards:

1. the encoder embeds a stratified sample of the training split (cached on disk: embedding is the slow
   step) and a logistic-regression head learns sentiment from the 384-d embeddings (C chosen on
   validation);
2. the uncertain band is the probability interval around the n-gram threshold that holds a target share
   of validation texts;
3. a fusion head (logistic regression on the two logits) is fitted on the validation texts in the band,
   and its decision point is moved onto the n-gram threshold, so serving's one rule (negative when the
   probability reaches the stored threshold) holds for both parts.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

from serving.cascade import EPSILON
from training.config import SEED
from training.metrics import binary_metrics, predict_labels

HEAD_C_GRID = (0.3, 1.0, 3.0, 10.0)
BAND_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 1.0)


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)) with p kept off 0 and 1 (the n-gram graph can answer exactly 0 or 1)."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@dataclass
class Head:
    """A logistic regression on the encoder's embedding: logit of P(negative) = coef · e + intercept."""

    coef: np.ndarray
    intercept: float
    c: float

    def logit(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings.astype(np.float64) @ self.coef + self.intercept


@dataclass
class Fusion:
    """logit of the cascade's P(negative) = ngram · logit(p_ngram) + encoder · head logit + bias."""

    ngram: float
    encoder: float
    bias: float

    def probability(self, p_ngram: np.ndarray, encoder_logit: np.ndarray) -> np.ndarray:
        return sigmoid(self.ngram * logit(p_ngram) + self.encoder * encoder_logit + self.bias)


@dataclass
class CascadeFit:
    head: Head
    fusion: Fusion
    band: tuple[float, float]
    band_share: float  # the target share of validation texts in the band
    threshold: float
    choice: list[dict] = field(default_factory=list)  # validation figures per candidate band share
    facts: dict = field(default_factory=dict)  # sizes and timings, for the card


def in_band(p_ngram: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    lo, hi = band
    return (p_ngram >= lo) & (p_ngram <= hi)


def band_for_share(p_ngram: np.ndarray, threshold: float, share: float) -> tuple[float, float]:
    """The probability interval holding the ``share`` of texts whose logit is closest to the threshold's."""
    if share >= 1.0:
        return (0.0, 1.0)
    distance = np.abs(logit(p_ngram) - logit(threshold))
    count = max(1, math.ceil(share * len(p_ngram)))
    chosen = np.argsort(distance, kind="stable")[:count]
    return float(p_ngram[chosen].min()), float(p_ngram[chosen].max())


def cascade_probability(
    p_ngram: np.ndarray, encoder_logit: np.ndarray, fusion: Fusion, band: tuple[float, float]
) -> np.ndarray:
    """The fused probability inside the band, the n-gram one outside (what serving answers when the
    request's encoder quota is not exhausted)."""
    return np.where(in_band(p_ngram, band), fusion.probability(p_ngram, encoder_logit), p_ngram)


def fit_head(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    validation_embeddings: np.ndarray,
    validation_labels: np.ndarray,
    *,
    seed: int = SEED,
) -> tuple[Head, list[dict]]:
    """The encoder's own classifier; its regularisation chosen by validation ROC-AUC."""
    negative = (np.asarray(train_labels) == 0).astype(int)
    rows, best = [], None
    for c in HEAD_C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
        model.fit(train_embeddings, negative)
        head = Head(model.coef_[0].astype(np.float64), float(model.intercept_[0]), c)
        auc = float(roc_auc_score(np.asarray(validation_labels) == 0, head.logit(validation_embeddings)))
        rows.append({"C": c, "validation_roc_auc": auc})
        if best is None or auc > best[0] + 1e-4:
            best = (auc, head)
    assert best is not None
    return best[1], rows


def fit_fusion(
    p_ngram: np.ndarray,
    encoder_logit: np.ndarray,
    labels: np.ndarray,
    band: tuple[float, float],
    threshold: float,
) -> Fusion:
    """Logistic regression on the two logits of the band's validation texts, its bias moved so that the
    stored threshold is the decision point that maximises validation macro-F1 (all texts counted: those
    outside the band keep the n-gram decision)."""
    inside = in_band(p_ngram, band)
    if inside.sum() < 20 or len(np.unique(labels[inside])) < 2:
        raise ValueError("too few validation texts in the uncertain band to fit the fusion head")
    features = np.column_stack([logit(p_ngram[inside]), encoder_logit[inside]])
    model = LogisticRegression(C=100.0, max_iter=1000)
    model.fit(features, (labels[inside] == 0).astype(int))
    fusion = Fusion(float(model.coef_[0][0]), float(model.coef_[0][1]), float(model.intercept_[0]))
    p_fused = fusion.probability(p_ngram, encoder_logit)
    best_t, best_f1 = 0.5, -1.0
    for t in sorted(np.round(np.arange(0.2, 0.8001, 0.01), 4), key=lambda t: (abs(t - threshold), t)):
        combined = np.where(inside, p_fused >= t, p_ngram >= threshold)
        predicted = np.where(combined, 0, 1)
        score = f1_score(labels, predicted, average="macro")
        if score > best_f1 + 1e-12:
            best_t, best_f1 = float(t), float(score)
    fusion.bias += float(logit(threshold) - logit(best_t))
    return fusion


def fit_cascade(
    *,
    threshold: float,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray, np.ndarray],
    band_share: float = 0.3,
    seed: int = SEED,
) -> CascadeFit:
    """``train``: (embeddings, labels); ``validation``: (embeddings, labels, n-gram P(negative))."""
    train_embeddings, train_labels = train
    val_embeddings, val_labels, val_p = validation
    head, head_rows = fit_head(train_embeddings, train_labels, val_embeddings, val_labels, seed=seed)
    val_encoder = head.logit(val_embeddings)
    ngram_f1 = float(f1_score(val_labels, predict_labels(val_p, threshold), average="macro"))
    choice = []
    for share in sorted({*BAND_SHARES, band_share}):
        band = band_for_share(val_p, threshold, share)
        try:
            fusion = fit_fusion(val_p, val_encoder, val_labels, band, threshold)
        except ValueError as error:  # a small validation split: this share is not measurable
            choice.append({"band_share": share, "band": list(band), "skipped": str(error)})
            continue
        p = cascade_probability(val_p, val_encoder, fusion, band)
        choice.append(
            {
                "band_share": share,
                "band": list(band),
                "validation_share_in_band": float(in_band(val_p, band).mean()),
                "validation_f1": float(f1_score(val_labels, predict_labels(p, threshold), average="macro")),
                "validation_roc_auc": float(roc_auc_score(val_labels == 0, p)),
                "ngram_validation_f1": ngram_f1,
            }
        )
    band = band_for_share(val_p, threshold, band_share)
    fusion = fit_fusion(val_p, val_encoder, val_labels, band, threshold)
    facts = {"head_search": head_rows, "train_rows": len(train_labels)}
    return CascadeFit(head, fusion, band, band_share, threshold, choice, facts)


# ------------------------------------------------------------------------------------------ evaluation


def bootstrap_interval(
    labels: np.ndarray,
    p_neg: np.ndarray,
    threshold: float,
    *,
    n_boot: int = 1000,
    seed: int = SEED,
) -> dict[str, list[float]]:
    """95 % percentile intervals of macro-F1 and ROC-AUC by resampling texts."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels).astype(int)
    predicted = predict_labels(p_neg, threshold)
    f1s, aucs = [], []
    for _ in range(n_boot):
        rows = rng.integers(0, len(y), len(y))
        if len(np.unique(y[rows])) < 2:
            continue
        f1s.append(f1_score(y[rows], predicted[rows], average="macro"))
        aucs.append(roc_auc_score(y[rows], 1.0 - p_neg[rows]))
    return {
        "f1": [float(np.percentile(f1s, 2.5)), float(np.percentile(f1s, 97.5))],
        "roc_auc": [float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))],
    }


def evaluate_parts(
    fit: CascadeFit, labels: np.ndarray, p_ngram: np.ndarray, embeddings: np.ndarray, *, n_boot: int = 1000
) -> dict[str, dict]:
    """Metrics (with bootstrap intervals) of the n-gram model, the encoder head alone and the cascade."""
    encoder_logit = fit.head.logit(embeddings)
    parts = {
        "ngram": p_ngram,
        "encoder": sigmoid(encoder_logit),
        "cascade": cascade_probability(p_ngram, encoder_logit, fit.fusion, fit.band),
    }
    out = {}
    for name, p in parts.items():
        threshold = fit.threshold if name != "encoder" else 0.5
        metrics = binary_metrics(labels, p, threshold)
        metrics["interval"] = bootstrap_interval(labels, p, threshold, n_boot=n_boot)
        out[name] = metrics
    out["cascade"]["share_in_band"] = float(in_band(p_ngram, fit.band).mean())
    return out


# ------------------------------------------------------------------------------------------- embedding


def stratified_sample(labels: np.ndarray, size: int | None, seed: int = SEED) -> np.ndarray:
    """Row indices of a stratified deterministic sample (all rows when ``size`` is None or too big)."""
    rows = np.arange(len(labels))
    if size is None or size >= len(rows):
        return rows
    chosen, _ = train_test_split(rows, train_size=size, random_state=seed, stratify=labels)
    return np.sort(chosen)


def embed_cached(
    embed: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    cache_dir: Path,
    encoder_digest: str,
    *,
    batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` (from the cache when this encoder embedded these texts before) and the
    seconds embedding them took when they were computed (kept beside the cache, so reports state the
    real cost; 0 when that record is missing)."""
    key = hashlib.sha256(json.dumps([encoder_digest, list(texts)]).encode()).hexdigest()[:16]
    path = cache_dir / f"{key}.npy"
    timing = path.with_suffix(".json")
    if path.is_file():
        seconds = json.loads(timing.read_text(encoding="utf-8"))["seconds"] if timing.is_file() else 0.0
        return np.load(path), float(seconds)
    cache_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
    out: np.ndarray | None = None
    for begin in range(0, len(order), batch):
        rows = order[begin : begin + batch]
        vectors = embed([texts[i] for i in rows])
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[rows] = vectors
        if progress is not None:
            progress(len(rows))
    seconds = time.perf_counter() - start
    result = out if out is not None else np.empty((0, 0), dtype=np.float32)
    np.save(path, result)
    timing.write_text(json.dumps({"texts": len(texts), "seconds": round(seconds, 1)}), encoding="utf-8")
    return result, seconds
