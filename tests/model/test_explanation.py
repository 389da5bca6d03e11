"""Explanations per word: each word of the normalized text once, the n-grams' contributions folded in
without loss, so that the words' weights plus the model's intercept give the logit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.contract import EXPLAIN_INPUT, INPUT_NAME, PROBABILITY_OUTPUT, TERM_OUTPUTS
from serving.explanation import word_contributions
from serving.normalizer import normalize
from serving.runtime import SentimentModel
from tests.app_fixtures import model_path

WORDS = ["lost", "bag", "not", "bad", "great", "crew", "delayed", "awful", "thanks", "flight", "love", "hate"]
tweets = st.lists(
    st.one_of(
        st.sampled_from(WORDS), st.text(min_size=1, max_size=8), st.sampled_from(["😡", ":)", "!!", "?"])
    ),
    min_size=1,
    max_size=25,
).map(" ".join)


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load(model_path())


def all_terms(model: SentimentModel, normalized: str) -> tuple[float, list[str], list[float]]:
    """The graph's own outputs for one text: probability, every matched n-gram and its weight."""
    outputs = model.session.run(
        [PROBABILITY_OUTPUT, *TERM_OUTPUTS],
        {INPUT_NAME: np.array([normalized], dtype=object), EXPLAIN_INPUT: np.array(True)},
    )
    probability, _, terms, weights = outputs
    return float(probability[0]), [str(t) for t in terms.tolist()], [float(w) for w in weights.tolist()]


@settings(max_examples=200, deadline=None)
@given(tweets)
def test_words_are_unique_words_of_the_text_and_nothing_is_lost(model, text):
    normalized = normalize(text)
    _, terms, weights = all_terms(model, normalized)
    folded = word_contributions(normalized, terms, weights)
    assert set(folded) <= set(normalized.split())
    assert sum(folded.values()) == pytest.approx(sum(weights), abs=1e-5)
    explained = model.predict([text], explain=True, top_k=1000)[0].explanation
    words = [term["term"] for term in explained]
    assert len(words) == len(set(words)) and set(words) == set(folded)


@settings(max_examples=150, deadline=None)
@given(st.lists(tweets, min_size=2, max_size=4))
def test_words_plus_the_intercept_give_the_logit(model, texts):
    """logit(positive) - sum(word weights) is the same number (the intercept) for every text."""
    intercepts = []
    for text in texts:
        normalized = normalize(text)
        probability, terms, weights = all_terms(model, normalized)
        if not 1e-3 < probability < 1 - 1e-3:
            continue  # float32 probabilities this close to 0 or 1 pin the logit down too loosely
        logit = math.log((1 - probability) / probability)
        intercepts.append(logit - sum(word_contributions(normalized, terms, weights).values()))
    if len(intercepts) >= 2:
        assert max(intercepts) - min(intercepts) < 2e-4


def test_character_and_word_grams_fold_into_the_words_they_cover():
    # "bad" on a word boundary is the word; "ad" inside "bad" and "sad" is shared by its two occurrences.
    folded = word_contributions("not bad sad", ["not bad", "bad", "ad", "t b"], [-1.0, 2.0, 0.5, 0.3])
    assert folded["not"] == pytest.approx(-1.0 * 3 / 6 + 0.3 * 1 / 2)
    assert folded["bad"] == pytest.approx(-1.0 * 3 / 6 + 2.0 + 0.25 + 0.3 * 1 / 2)
    assert folded["sad"] == pytest.approx(0.25)
    assert sum(folded.values()) == pytest.approx(-1.0 + 2.0 + 0.5 + 0.3)
    assert word_contributions("", [], []) == {}
