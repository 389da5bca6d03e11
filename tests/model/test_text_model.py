"""TweetSentimentModel: a well-behaved scikit-learn estimator whose features are what the graph rebuilds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from tests.tweet_corpus import generated_corpus
from training.modeling.text_model import TweetSentimentModel


@pytest.fixture(scope="module")
def corpus():
    return generated_corpus()


@pytest.fixture(scope="module")
def nb_char_model(corpus):
    texts, labels = corpus
    return TweetSentimentModel(char_ngram_range=(1, 3), sublinear_tf=True, nb_weighting=True).fit(
        texts, labels
    )


def test_params_clone_and_set_params_round_trip():
    model = TweetSentimentModel(word_ngram_range=(1, 3), char_ngram_range=(2, 4), C=3.0, threshold=0.4)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    copy.set_params(C=0.5, nb_weighting=True)
    assert copy.C == 0.5 and copy.nb_weighting is True and model.C == 3.0


def test_grid_search_fits_and_keeps_the_best_params(corpus):
    texts, labels = corpus
    search = GridSearchCV(TweetSentimentModel(word_max_features=500), {"C": [0.1, 10.0]}, cv=2, n_jobs=1)
    search.fit(texts, labels)
    assert search.best_params_["C"] in (0.1, 10.0)
    assert search.best_estimator_.score(texts, labels) > 0.8


def test_probabilities_labels_and_threshold_agree(corpus):
    texts, labels = corpus
    model = TweetSentimentModel(threshold=0.3).fit(texts, labels)
    proba = model.predict_proba(texts[:50])
    negative = model.negative_probability(texts[:50])
    assert proba.shape == (50, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 0], negative)
    np.testing.assert_allclose(negative, 1 / (1 + np.exp(model.decision_function(texts[:50]))))
    assert list(model.predict(texts[:50])) == [0 if p >= 0.3 else 1 for p in negative]
    assert model.predict(["worst delayed lost"])[0] == 0
    assert model.predict(["great love thanks"])[0] == 1


def test_tokens_are_the_normalizer_words_including_punctuation(corpus):
    texts, labels = corpus
    model = TweetSentimentModel(word_ngram_range=(1, 2)).fit(texts, labels)
    vocabulary = model.vectorizers_[0].vocabulary_
    # The default scikit-learn pattern would drop one-character tokens and "!" / "?".
    assert {"!", "?", "x", "2", "_"} <= set(vocabulary)
    assert model.n_features_ == len(vocabulary)


def test_sublinear_tf_is_one_plus_log_tf_then_l2(corpus):
    texts, labels = corpus
    model = TweetSentimentModel(word_ngram_range=(1, 1), sublinear_tf=True).fit(texts, labels)
    row = model.transform(["late late late late flight"]).toarray()[0]
    vocabulary, idf = model.vectorizers_[0].vocabulary_, model.vectorizers_[0].idf_
    late, flight = (1 + math.log(4)) * idf[vocabulary["late"]], idf[vocabulary["flight"]]
    norm = math.hypot(late, flight)
    assert row[vocabulary["late"]] == pytest.approx(late / norm)
    assert row[vocabulary["flight"]] == pytest.approx(flight / norm)


def test_occurrence_norm_divides_raw_tf_idf_by_the_root_of_idf_squared_over_occurrences(corpus):
    texts, labels = corpus
    model = TweetSentimentModel(word_ngram_range=(1, 1), norm="occurrence_l2").fit(texts, labels)
    row = model.transform(["late late late late flight"]).toarray()[0]
    vocabulary, idf = model.vectorizers_[0].vocabulary_, model.vectorizers_[0].idf_
    late, flight = idf[vocabulary["late"]], idf[vocabulary["flight"]]
    norm = math.sqrt(4 * late**2 + flight**2)
    assert row[vocabulary["late"]] == pytest.approx(4 * late / norm)
    assert row[vocabulary["flight"]] == pytest.approx(flight / norm)
    assert model.transform([""]).nnz == 0


def test_occurrence_norm_equals_l2_when_no_ngram_repeats(corpus):
    texts, labels = corpus
    fitted = {
        norm: TweetSentimentModel(word_ngram_range=(1, 2), char_ngram_range=(2, 3), norm=norm).fit(
            texts, labels
        )
        for norm in ("l2", "occurrence_l2")
    }
    once = "crew was kind"  # no word or character n-gram occurs twice
    x = {norm: model.transform([once]).toarray()[0] for norm, model in fitted.items()}
    np.testing.assert_allclose(x["occurrence_l2"], x["l2"], atol=1e-12)
    twice = {norm: model.transform(["late late"]).toarray()[0] for norm, model in fitted.items()}
    assert not np.allclose(twice["occurrence_l2"], twice["l2"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"norm": "l1"}, "norm must be one of"),
        ({"norm": "occurrence_l2", "sublinear_tf": True}, "needs sublinear_tf=False"),
    ],
)
def test_norm_settings_are_checked(corpus, params, message):
    texts, labels = corpus
    with pytest.raises(ValueError, match=message):
        TweetSentimentModel(**params).fit(texts, labels)


def test_each_block_is_l2_normalised_on_its_own(nb_char_model):
    x = nb_char_model.transform(["late flight again"]).toarray()[0]
    word_size = len(nb_char_model.feature_blocks()[0].terms)
    assert np.linalg.norm(x[:word_size]) == pytest.approx(1.0)
    assert np.linalg.norm(x[word_size:]) == pytest.approx(1.0)
    assert nb_char_model.n_features_ == len(x)


def test_nb_weighting_folds_into_the_feature_weights(nb_char_model, corpus):
    texts, _ = corpus
    ratio = nb_char_model.nb_ratio_
    assert ratio[nb_char_model.terms_().index("great")] > 0 > ratio[nb_char_model.terms_().index("rude")]
    x = nb_char_model.transform(texts[:30])
    folded = x @ nb_char_model.feature_weights_ + nb_char_model.intercept_
    np.testing.assert_allclose(folded, nb_char_model.decision_function(texts[:30]), atol=1e-12)


def test_explain_gives_signed_top_terms_that_sum_to_the_logit(nb_char_model):
    text = "the crew was rude and my bag lost but seat comfy"
    (top,) = nb_char_model.explain([text], top_k=3)
    assert len(top) == 3
    assert [abs(w) for _, w in top] == sorted((abs(w) for _, w in top), reverse=True)
    (everything,) = nb_char_model.explain([text], top_k=10_000)
    assert top == everything[:3]
    total = sum(w for _, w in everything) + nb_char_model.intercept_
    assert total == pytest.approx(nb_char_model.decision_function([text])[0])
    weights = dict(nb_char_model.explain(["rude lost"], top_k=50)[0])
    assert weights["rude"] < 0 and weights["lost"] < 0
    assert nb_char_model.explain([""], top_k=5) == [[]]


def test_fit_rejects_bad_input(corpus):
    texts, labels = corpus
    with pytest.raises(ValueError, match="labels"):
        TweetSentimentModel().fit(texts, np.full(len(texts), 4))
    with pytest.raises(TypeError, match="text 1"):
        TweetSentimentModel().fit(["a", None], [0, 1])
    with pytest.raises(ValueError, match="threshold"):
        TweetSentimentModel(threshold=1.5).fit(texts, labels)
