"""The project's text model: TF-IDF n-grams (word and optional character), optional NB weighting,
logistic regression.

Input texts are already normalized (``serving.normalizer.normalize``): lowercase tokens joined by
single spaces. Tokens are therefore ``text.split(" ")`` and nothing else, which is what lets the ONNX
graph in ``training/export/ngram_graph.py`` reproduce the features exactly. Each feature block is normalised
on its own, as a separate ``TfidfVectorizer`` would do it, by one of two norms (``norm``):

- ``"l2"``: the usual TF-IDF L2 norm (optionally on ``1 + log tf``);
- ``"occurrence_l2"``: raw tf x idf divided by ``sqrt(sum over the text's n-gram occurrences of idf**2)``,
  the L2 norm of the ``sqrt(tf) x idf`` vector. It equals ``"l2"`` whenever no n-gram repeats within a
  text (most n-grams of a tweet), and both the norm and the logit are then plain sums over occurrences,
  so the ONNX graph scores a text without grouping its n-grams (no sort): the fast serving path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from training.config import SEED

# Tokens are the normalizer's space-separated words; the pattern never matches an empty string.
WORD_TOKEN_PATTERN = r"[^ ]+"
NB_ALPHA = 1.0
NORMS = ("l2", "occurrence_l2")


@dataclass(frozen=True)
class FeatureBlock:
    """One normalised block of features, described the way the ONNX exporter needs it."""

    analyzer: str  # "word" (n-grams of space-separated tokens) or "char" (n-grams of characters)
    ngram_range: tuple[int, int]
    terms: list[str]  # term of each column, in column order
    idf: np.ndarray  # float64 [len(terms)]
    weights: np.ndarray  # float64 [len(terms)]: logistic coefficient x NB ratio (1 when not used)


def _as_texts(texts: Iterable[str]) -> list[str]:
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {position} is {type(text).__name__}, expected a normalized str")
    return texts


class TweetSentimentModel(ClassifierMixin, BaseEstimator):
    """Input: NORMALIZED texts. Tokens = text.split(" ") (the normalizer's contract), word n-grams
    (and optional char n-grams over the whole normalized string), TF-IDF (each block normalised by
    ``norm``, see the module docstring), optional NB log-count-ratio feature weighting, logistic
    regression. Label 1 = positive."""

    def __init__(
        self,
        word_ngram_range=(1, 2),
        word_max_features=50_000,
        word_min_df=1,
        char_ngram_range=None,
        char_max_features=None,
        char_min_df=2,
        sublinear_tf=False,
        norm="l2",
        nb_weighting=False,
        C=1.0,
        class_weight=None,
        threshold=0.5,
        max_iter=2000,
    ):
        self.word_ngram_range = word_ngram_range
        self.word_max_features = word_max_features
        self.word_min_df = word_min_df
        self.char_ngram_range = char_ngram_range
        self.char_max_features = char_max_features
        self.char_min_df = char_min_df
        self.sublinear_tf = sublinear_tf
        self.norm = norm
        self.nb_weighting = nb_weighting
        self.C = C
        self.class_weight = class_weight
        self.threshold = threshold
        self.max_iter = max_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    # -- fitting -------------------------------------------------------------------------------

    def _vectorizers(self) -> list[TfidfVectorizer]:
        shared = {
            "lowercase": False,
            "sublinear_tf": self.sublinear_tf,
            "norm": self._vectorizer_norm(),
            "dtype": np.float64,
        }
        vectorizers = [
            TfidfVectorizer(
                analyzer="word",
                token_pattern=WORD_TOKEN_PATTERN,
                ngram_range=tuple(self.word_ngram_range),
                max_features=self.word_max_features,
                min_df=self.word_min_df,
                **shared,
            )
        ]
        if self.char_ngram_range is not None:
            vectorizers.append(
                TfidfVectorizer(
                    analyzer="char",
                    ngram_range=tuple(self.char_ngram_range),
                    max_features=self.char_max_features,
                    min_df=self.char_min_df,
                    **shared,
                )
            )
        return vectorizers

    def _vectorizer_norm(self) -> str | None:
        """The vectorizers apply "l2" themselves; "occurrence_l2" is applied on their raw tf x idf."""
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.norm == "occurrence_l2" and self.sublinear_tf:
            raise ValueError("norm 'occurrence_l2' sums over occurrences: it needs sublinear_tf=False")
        return "l2" if self.norm == "l2" else None

    def _block_features(self, vectorizer: TfidfVectorizer, texts: list[str], fit: bool) -> sp.csr_matrix:
        x = vectorizer.fit_transform(texts) if fit else vectorizer.transform(texts)
        if self.norm == "l2":
            return x
        # x = tf x idf, so x * idf summed over a row is the sum of idf**2 over the row's occurrences.
        squares = np.asarray(x.multiply(vectorizer.idf_[np.newaxis, :]).sum(axis=1)).ravel()
        scale = np.divide(1.0, np.sqrt(squares), out=np.zeros_like(squares), where=squares > 0)
        return sp.csr_matrix(x.multiply(scale[:, np.newaxis]))

    def fit(self, texts, labels, sample_weight=None):
        """Fit the vectorizers, the NB ratios (when asked) and the logistic regression; ``sample_weight``
        (e.g. heavier feedback rows) weighs the NB counts and the regression's loss, not the idf."""
        if not 0.0 < float(self.threshold) < 1.0:
            raise ValueError(f"threshold must be strictly between 0 and 1, got {self.threshold}")
        texts = _as_texts(texts)
        y = np.asarray(labels).astype(np.int64)
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} texts but {len(y)} labels")
        if not set(np.unique(y)) <= {0, 1} or len(np.unique(y)) != 2:
            raise ValueError("labels must be 0 (negative) and 1 (positive), both present")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != y.shape or not np.all(np.isfinite(sample_weight) & (sample_weight > 0)):
                raise ValueError(f"sample_weight must hold {len(y)} positive finite numbers")
        self.vectorizers_ = self._vectorizers()
        x = sp.hstack([self._block_features(v, texts, fit=True) for v in self.vectorizers_], format="csr")
        self.nb_ratio_ = self._nb_ratio(x, y, sample_weight) if self.nb_weighting else np.ones(x.shape[1])
        self.classifier_ = LogisticRegression(
            solver="liblinear",
            C=self.C,
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=SEED,
        ).fit(self._weighted(x), y, sample_weight=sample_weight)
        self.classes_ = np.array([0, 1])
        self.n_features_ = int(x.shape[1])
        return self

    @property
    def feature_weights_(self) -> np.ndarray:
        """Per-feature weight on the normalised TF-IDF: coefficient x NB ratio (derived from the
        fitted classifier, so it can never go stale)."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.coef_[0] * self.nb_ratio_

    @property
    def intercept_(self) -> float:
        check_is_fitted(self, "classifier_")
        return float(self.classifier_.intercept_[0])

    @staticmethod
    def _nb_ratio(x: sp.csr_matrix, y: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
        """NBSVM log-count ratio r = log((p/|p|) / (q/|q|)) on binarized features, smoothed by alpha;
        each text counts ``sample_weight`` times."""
        present = (x > 0).astype(np.float64)
        weight = np.ones(len(y)) if sample_weight is None else sample_weight
        p = NB_ALPHA + np.asarray(present.T @ (weight * (y == 1))).ravel()
        q = NB_ALPHA + np.asarray(present.T @ (weight * (y == 0))).ravel()
        return np.log((p / p.sum()) / (q / q.sum()))

    def _weighted(self, x: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(x.multiply(self.nb_ratio_[np.newaxis, :])) if self.nb_weighting else x

    # -- scoring -------------------------------------------------------------------------------

    def transform(self, texts) -> sp.csr_matrix:
        """TF-IDF features (each block normalised by ``norm``), before NB weighting."""
        check_is_fitted(self, "classifier_")
        texts = _as_texts(texts)
        return sp.hstack([self._block_features(v, texts, fit=False) for v in self.vectorizers_], format="csr")

    def classifier_input(self, texts) -> sp.csr_matrix:
        """What the fitted logistic regression scores (features x NB ratios): a search can compute it
        once and refit only ``classifier_``."""
        return self._weighted(self.transform(texts))

    def decision_function(self, texts) -> np.ndarray:
        """Positive-class logit."""
        return self.classifier_.decision_function(self.classifier_input(texts))

    def negative_probability(self, texts) -> np.ndarray:
        return expit(-self.decision_function(texts))

    def predict_proba(self, texts) -> np.ndarray:
        negative = self.negative_probability(texts)
        return np.column_stack([negative, 1.0 - negative])

    def predict(self, texts) -> np.ndarray:
        """0 (negative) when the negative probability reaches the threshold, else 1."""
        return np.where(self.negative_probability(texts) >= self.threshold, 0, 1)

    def explain(self, texts, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Per text, the ``top_k`` matched n-grams by |contribution to the positive logit|, signed."""
        x = self.transform(texts)
        terms = self.terms_()
        explanations = []
        for row in range(x.shape[0]):
            start, end = x.indptr[row], x.indptr[row + 1]
            columns = x.indices[start:end]
            contributions = x.data[start:end] * self.feature_weights_[columns]
            order = sorted(range(len(columns)), key=lambda i: (-abs(contributions[i]), terms[columns[i]]))
            explanations.append([(terms[columns[i]], float(contributions[i])) for i in order[:top_k]])
        return explanations

    # -- description for the exporter ----------------------------------------------------------

    def terms_(self) -> list[str]:
        """The term of every column, word block first."""
        return [term for block in self.feature_blocks() for term in block.terms]

    def feature_blocks(self) -> list[FeatureBlock]:
        check_is_fitted(self, "classifier_")
        blocks, offset = [], 0
        for vectorizer in self.vectorizers_:
            terms = [""] * len(vectorizer.vocabulary_)
            for term, column in vectorizer.vocabulary_.items():
                terms[column] = term
            size = len(terms)
            blocks.append(
                FeatureBlock(
                    analyzer=vectorizer.analyzer,
                    ngram_range=tuple(vectorizer.ngram_range),
                    terms=terms,
                    idf=np.asarray(vectorizer.idf_, dtype=np.float64),
                    weights=np.asarray(self.feature_weights_[offset : offset + size], dtype=np.float64),
                )
            )
            offset += size
        return blocks


def describe(model: TweetSentimentModel) -> dict:
    """The model's parameters as JSON-friendly values (tuples become lists)."""
    params: dict = {}
    for name, value in model.get_params().items():
        params[name] = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
    return params
