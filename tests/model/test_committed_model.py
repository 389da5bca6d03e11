"""Behaviour of the committed ``model/sentiment.onnx``, loaded the way serving loads it: plain
onnxruntime on normalized texts, no scikit-learn."""

from __future__ import annotations

import json
import re

import numpy as np
import onnxruntime as ort
import pytest

from serving.normalizer import normalize

NEGATIVE_TWEETS = [
    "Worst airline ever. Flight delayed 5 hours and they lost my bag.",
    "@AirParadis you cancelled my flight and nobody helps, terrible service",
    "So angry, rude staff at the gate and no refund :(",
    "I hate flying with you, delayed again and missed my connection",
    "Lost luggage, broken seat, awful food. Never again.",
]
POSITIVE_TWEETS = [
    "Thank you @AirParadis for a great flight, the crew was amazing!",
    "Love this airline, smooth flight and friendly staff :)",
    "Best flight ever, thanks for the upgrade!",
    "Great service today, happy to be home, thank you",
    "Awesome crew, comfy seats, love it",
]
DECORATIONS = [
    lambda t: t + " http://t.co/xyz123",
    lambda t: "@someone " + t,
    lambda t: t + " @AirParadis https://airparadis.example/booking",
]


@pytest.fixture(scope="module")
def committed(repo_root):
    path = repo_root / "model" / "sentiment.onnx"
    if not path.is_file():
        pytest.fail(f"{path} is missing: export a model with `python -m training export`")
    scorer = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = {key: json.loads(value) for key, value in scorer.get_modelmeta().custom_metadata_map.items()}
    return scorer, meta


def score(committed, raw_texts: list[str]) -> np.ndarray:
    scorer, _ = committed
    texts = np.array([normalize(t) for t in raw_texts], dtype=object)
    return scorer.run(["negative_probability"], {"text": texts})[0]


def test_metadata_carries_the_artifact_contract(committed):
    _, meta = committed
    required = {"model_version", "normalizer_version", "threshold", "labels", "n_features",
                "training_data_fingerprint", "test_metrics", "params", "created_at"}  # fmt: skip
    assert required <= set(meta)
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}-[0-9a-f]{8}", meta["model_version"])
    assert meta["labels"] == ["negative", "positive"]
    assert 0 < meta["threshold"] < 1 and meta["n_features"] > 0


def test_io_follows_the_artifact_contract(committed):
    scorer, _ = committed
    assert [(i.name, i.type) for i in scorer.get_inputs()] == [("text", "tensor(string)")]
    assert [o.name for o in scorer.get_outputs()] == [
        "negative_probability",
        "term_row",
        "term_text",
        "term_weight",
        "ngram_known",
        "ngram_total",
    ]
    probability, rows, terms, weights, known, total = scorer.run(
        None, {"text": np.array(["lost my bag", ""], dtype=object), "explain": np.array(True)}
    )
    assert known.dtype == total.dtype == np.int64 and total[1] == 0 and 0 < known[0] <= total[0]
    assert probability.dtype == np.float32 and probability.shape == (2,)
    assert rows.dtype == np.int64 and weights.dtype == np.float32 and len(rows) == len(terms) == len(weights)
    assert set(rows.tolist()) == {0} and "lost" in terms.tolist()


def test_explanations_are_computed_only_when_asked(committed):
    scorer, _ = committed
    assert [i.name for i in scorer.get_overridable_initializers()] == ["explain"]
    texts = np.array([normalize(t) for t in NEGATIVE_TWEETS + POSITIVE_TWEETS], dtype=object)
    outputs = ["negative_probability", "term_row", "term_text", "term_weight"]
    plain = scorer.run(outputs, {"text": texts})
    asked = scorer.run(outputs, {"text": texts, "explain": np.array(True)})
    np.testing.assert_array_equal(plain[0], asked[0])
    assert [len(o) for o in plain[1:]] == [0, 0, 0] and min(len(o) for o in asked[1:]) > len(texts)


def test_plainly_negative_airline_tweets_are_negative(committed):
    threshold = committed[1]["threshold"]
    probabilities = score(committed, NEGATIVE_TWEETS)
    assert all(probabilities >= threshold), dict(zip(NEGATIVE_TWEETS, probabilities.tolist(), strict=True))


def test_plainly_positive_airline_tweets_are_positive(committed):
    threshold = committed[1]["threshold"]
    probabilities = score(committed, POSITIVE_TWEETS)
    assert all(probabilities < threshold), dict(zip(POSITIVE_TWEETS, probabilities.tolist(), strict=True))


@pytest.mark.parametrize("decorate", DECORATIONS, ids=["url", "mention", "mention_and_url"])
def test_a_url_or_mention_does_not_flip_the_label(committed, decorate):
    threshold = committed[1]["threshold"]
    tweets = NEGATIVE_TWEETS + POSITIVE_TWEETS
    before = score(committed, tweets) >= threshold
    after = score(committed, [decorate(t) for t in tweets]) >= threshold
    assert before.tolist() == after.tolist()


def test_explanations_point_the_right_way(committed):
    scorer, _ = committed
    texts = np.array(
        [normalize("delayed and lost my bag, worst"), normalize("thank you, great crew")], dtype=object
    )
    _, rows, terms, weights = scorer.run(
        ["negative_probability", "term_row", "term_text", "term_weight"],
        {"text": texts, "explain": np.array(True)},
    )
    negative = dict(zip(terms[rows == 0].tolist(), weights[rows == 0].tolist(), strict=True))
    positive = dict(zip(terms[rows == 1].tolist(), weights[rows == 1].tolist(), strict=True))
    assert negative["worst"] < 0 and negative["lost"] < 0
    assert positive["great"] > 0 and positive["thank"] > 0
