"""The airline-topic lexicon and matcher: format, matching rules, linear cost, measured quality, and
``topics`` on every prediction of the API."""

from __future__ import annotations

import json
import random

import pytest

from devtools.topic_quality import END, SAMPLE, START, markdown_table, measure
from serving.normalizer import normalize, without_negation_marks
from serving.topics import LEXICON_PATH, LexiconError, default_matcher, load_matcher
from tests.app_fixtures import assert_matches_document, call_function, openapi_document, registered_functions

__all__ = ["openapi_document", "registered_functions"]  # fixtures
REQUIRED = {
    "baggage",
    "delay",
    "cancellation",
    "refund",
    "customer_service",
    "booking",
    "crew",
    "comfort",
    "safety",
}
MICRO_F1_FLOOR = 0.85


def topics(text: str) -> list[str]:
    return default_matcher().match(normalize(text))


def test_the_lexicon_is_versioned_data_with_the_required_topics():
    document = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    assert document["version"] and set(document["topics"]) >= REQUIRED
    assert default_matcher().version == document["version"]


def test_every_entry_is_already_in_normalized_form():
    document = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    for topic, entry in document["topics"].items():
        for kind in ("terms", "prefixes", "phrases"):
            for value in entry.get(kind, []):
                assert normalize(value) == value, (topic, kind, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Lost my LUGGAGE in Lisbon @AirParadis http://t.co/x", ["baggage"]),
        ("Flight CANCELLED, I want a refund!!", ["cancellation", "refund"]),
        ("refunded in 3 days", ["refund"]),  # prefix
        ("2 hours on hold with customer service", ["customer_service"]),  # phrases
        ("#lostluggage again", ["baggage"]),  # hashtags keep their word
        ("Can't believe the crew, comfy seats and no delay", ["comfort", "crew", "delay"]),
        ("Heading to Barcelona for the weekend!", []),
        ("", []),
        ("東京", []),
    ],
)
def test_matching(text, expected):
    assert topics(text) == expected


def test_a_phrase_needs_its_tokens_in_a_row():
    assert "customer_service" not in topics("the customer was happy with the service")
    assert topics("the customer service was slow") == ["customer_service"]


def _naive(matcher_document: dict, normalized: str) -> list[str]:
    """The lexicon's rules written out plainly: every token, every prefix, every n-gram (negation marks
    stripped from the text and the entries: topics are about words, not their polarity)."""
    plain = without_negation_marks(normalized)
    tokens = plain.split(" ") if plain else []
    found = set()
    for topic, entry in matcher_document["topics"].items():
        grams = {" ".join(tokens[i : i + n]) for n in range(2, 5) for i in range(len(tokens) - n + 1)}
        phrases = {without_negation_marks(phrase) for phrase in entry.get("phrases", [])}
        if set(entry.get("terms", [])) & set(tokens) or phrases & grams:
            found.add(topic)
        if any(token.startswith(prefix) for token in tokens for prefix in entry.get("prefixes", [])):
            found.add(topic)
    return sorted(found)


def test_the_fast_matcher_gives_exactly_the_plain_rules_results():
    document = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    sample = [json.loads(line)["text"] for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
    words = sorted(
        {w for entry in document["topics"].values() for k in entry.values() for p in k for w in p.split()}
    )
    rng = random.Random(5)
    made = [
        " ".join(rng.choice([*words, "the", "my", "on", "x"]) for _ in range(rng.randint(1, 30)))
        for _ in range(500)
    ]
    for text in [*sample, *made, "refundable", "cancelling everything", "customerservicefail now"]:
        normalized = normalize(text)
        assert default_matcher().match(normalized) == _naive(document, normalized), normalized


def test_the_longest_normalized_text_is_matched():
    text = normalize("on time " * 1_300)
    assert len(text) <= 10_000 and default_matcher().match(text) == ["delay"]


@pytest.mark.parametrize(
    "entry",
    [
        {"terms": ["Luggage"]},
        {"terms": ["can't"]},
        {"terms": ["two words"]},
        {"phrases": ["single"]},
        {"phrases": ["a b c d e"]},
        {"prefixes": ["x" * 40]},
        {"colour": ["red"]},
    ],
)
def test_malformed_lexicons_are_refused(tmp_path, entry):
    path = tmp_path / "topics.json"
    path.write_text(json.dumps({"version": "t", "topics": {"x": entry}}))
    with pytest.raises(LexiconError):
        load_matcher(path)


def test_quality_on_the_labelled_sample_is_above_the_floor():
    figures = measure()
    assert figures["texts"] >= 300
    assert figures["texts_without_topic"] >= 30 and figures["texts_with_several_topics"] >= 30
    assert set(figures["topics"]) >= REQUIRED
    assert figures["micro"]["f1"] >= MICRO_F1_FLOOR, figures["micro"]


def test_the_published_figures_are_the_measured_ones():
    page = (LEXICON_PATH.parents[2] / "docs" / "reference" / "topics.md").read_text(encoding="utf-8")
    published = page.split(START, 1)[1].split(END, 1)[0].strip()
    assert published == markdown_table(measure()), "run python -m devtools.topic_quality --doc ..."


def test_every_prediction_of_the_api_carries_its_topics(registered_functions, openapi_document):
    texts = ["Lost my bag and the flight was delayed", "Heading home, see you soon"]
    answer = call_function(registered_functions, "predict", "POST", {"texts": texts})
    assert answer.status == 200
    assert [p["topics"] for p in answer.json()["predictions"]] == [["baggage", "delay"], []]
    assert_matches_document(openapi_document, "/predict", "post", answer)
    single = call_function(registered_functions, "predict", "POST", {"text": "cabin crew were lovely"})
    assert single.json()["topics"] == ["crew"]
    assert_matches_document(openapi_document, "/predict", "post", single)
