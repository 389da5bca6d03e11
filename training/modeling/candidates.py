"""The model families ``train`` compares, each with its search space.

Every candidate takes NORMALIZED texts and answers ``predict_proba`` (column 0 = negative), so one
scoring path measures them all. Only candidates whose family has a registered ONNX graph builder
(``training.export.families``; today ``TweetSentimentModel``) can become the production model.
Tree ensembles are tuned on a subsample of the training split (they are orders of magnitude slower on
sparse n-grams); the candidate table says so in its ``search`` column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import SelectPercentile, chi2
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from training.config import SEED
from training.modeling.text_model import WORD_TOKEN_PATTERN, TweetSentimentModel

TREE_SUBSAMPLE = 20_000


@dataclass(frozen=True)
class Candidate:
    """A model family: how to build it, what to search, on how many training rows."""

    name: str
    description: str
    build: Callable[[], object]
    grid: dict | list = field(default_factory=dict)  # parameter grid(s) (GridSearchCV) or distributions
    # "none"; "grid" / "random": GridSearchCV / RandomizedSearchCV over the whole estimator; "classifier":
    # GridSearchCV over a TweetSentimentModel's logistic regression on its cached features.
    search: str = "none"
    n_iter: int = 0  # RandomizedSearchCV draws
    subsample: int | None = None  # training rows used (None: the whole training split)

    @property
    def exportable(self) -> bool:
        """Whether the family has a registered ONNX graph builder (it can become the production model)."""
        from training.export.families import is_exportable

        return is_exportable(self.build())


def _word_tfidf(ngram_range=(1, 2), max_features=50_000) -> TfidfVectorizer:
    return TfidfVectorizer(
        token_pattern=WORD_TOKEN_PATTERN, lowercase=False, ngram_range=ngram_range, max_features=max_features
    )


def _svm() -> Pipeline:
    features = FeatureUnion(
        [
            ("word", _word_tfidf((1, 3), 200_000)),
            (
                "char",
                TfidfVectorizer(analyzer="char", lowercase=False, ngram_range=(2, 5), max_features=300_000),
            ),
        ]
    )
    svm = LinearSVC(C=0.1, random_state=SEED, max_iter=5000)
    return Pipeline([("features", features), ("svm", CalibratedClassifierCV(svm, method="sigmoid", cv=3))])


def _random_forest() -> Pipeline:
    return Pipeline(
        [
            ("tfidf", _word_tfidf((1, 2), 50_000)),
            ("select", SelectPercentile(chi2, percentile=10)),
            ("forest", RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=SEED)),
        ]
    )


def _gradient_boosting() -> Pipeline:
    return Pipeline(
        [
            ("tfidf", _word_tfidf((1, 2), 50_000)),
            ("svd", TruncatedSVD(n_components=150, random_state=SEED)),
            ("boosting", HistGradientBoostingClassifier(random_state=SEED, early_stopping=False)),
        ]
    )


# The production family's best configuration found by the model search (see model/README.md).
PRODUCTION_PARAMS = {
    "word_ngram_range": (1, 3),
    "word_max_features": 200_000,
    "char_ngram_range": (2, 5),
    "char_max_features": 300_000,
    "sublinear_tf": False,
    "norm": "occurrence_l2",  # scored without grouping n-grams: the fast graph (see text_model.py)
    "nb_weighting": False,
    "C": 1.0,
}


def all_candidates(production_params: dict | None = None) -> dict[str, Candidate]:
    """Every family, keyed by the name ``--candidates`` accepts."""
    params = dict(PRODUCTION_PARAMS, **(production_params or {}))
    classifier_grid = {
        "C": [params["C"] / 3, params["C"], params["C"] * 3],
        "class_weight": [None, "balanced"],
    }
    candidates = [
        Candidate(
            "baseline",
            "prototype: TF-IDF word 1-2 grams, 50k features, logistic regression C=1",
            lambda: TweetSentimentModel(word_ngram_range=(1, 2), word_max_features=50_000, C=1.0),
        ),
        Candidate(
            "logreg_tuned",
            "TF-IDF word 1-3 + char 2-5 grams, occurrence L2 norm, logistic regression; C and class weight",
            lambda: TweetSentimentModel(**params),
            grid=classifier_grid,
            search="classifier",
        ),
        Candidate(
            "nb_logreg",
            "NB-weighted (NBSVM log-count ratios) TF-IDF word 1-3 + char 2-5 grams, logistic regression",
            lambda: TweetSentimentModel(**dict(params, nb_weighting=True)),
            grid=classifier_grid,
            search="classifier",
        ),
        Candidate(
            "linear_svm",
            "TF-IDF word 1-3 + char 2-5 grams, linear SVM with sigmoid calibration (3-fold)",
            _svm,
            grid={"svm__estimator__C": [0.03, 0.1, 0.3]},
            search="classifier",
        ),
        Candidate(
            "random_forest",
            "TF-IDF word 1-2 grams (50k), top 10% by chi2 (5k), random forest (100 trees)",
            _random_forest,
            grid={
                "forest__max_features": ["sqrt", 0.05],
                "forest__min_samples_leaf": [1, 2, 5],
                "forest__max_depth": [None, 60],
            },
            search="random",
            n_iter=4,
            subsample=TREE_SUBSAMPLE,
        ),
        Candidate(
            "gradient_boosting",
            "TF-IDF word 1-2 grams, 150-dim SVD, histogram gradient boosting",
            _gradient_boosting,
            grid={
                "boosting__learning_rate": [0.05, 0.1, 0.2],
                "boosting__max_iter": [200, 400],
                "boosting__max_leaf_nodes": [15, 31, 63],
            },
            search="random",
            n_iter=4,
            subsample=TREE_SUBSAMPLE,
        ),
    ]
    return {candidate.name: candidate for candidate in candidates}
