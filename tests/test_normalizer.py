"""The one normalizer: the properties training and serving (and the ONNX graph) rely on."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from serving.normalizer import NORMALIZER_VERSION, normalize

OUTPUT_SHAPE = re.compile(r"^(?:[a-z0-9_!?]+(?: [a-z0-9_!?]+)*)?$")

tweetish = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from([*":;()D<3@#&!?'’ -_./", "http://", "www.", "&amp;", "😂", "ï¿½", "é", "â€™"]),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(tweetish)
def test_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=400, deadline=None)
@given(tweetish)
def test_output_is_ascii_tokens_separated_by_single_spaces(text):
    out = normalize(text)
    assert out.isascii()
    assert OUTPUT_SHAPE.match(out), out


def test_urls_and_mentions_become_placeholders():
    out = normalize("@united lost my bag http://t.co/AbC123 see www.example.com/x and bit.ly/abc")
    assert out.split() == ["user", "lost", "my", "bag", "url", "see", "url", "and", "url"]


def test_hashtags_keep_their_word():
    assert normalize("Flight delayed #fail #AirParadis") == "flight delayed fail airparadis"


def test_html_entities_and_case():
    assert normalize("Tom &amp; Jerry &lt;3 LOVE") == "tom jerry emopos love"


def test_emoticons_and_emoji_become_words():
    assert normalize("great :-) :D") == "great emopos emopos"
    assert normalize("awful :( :'( D:") == "awful emoneg emoneg emoneg"
    assert normalize("ok 😂👍🏽") == "ok face_with_tears_of_joy thumbs_up_sign"


def test_repeated_letters_and_punctuation():
    assert normalize("Sooooo goooood!!!!! really???") == "soo good ! really ?"


def test_apostrophes_join_words():
    assert normalize("I don’t think it's ok") == "i dont think its ok"


def test_mojibake_is_repaired_or_dropped():
    assert normalize("itâ€™s late ï¿½ again") == "its late again"


def test_accents_fold_and_other_scripts_drop():
    assert normalize("Café très bien") == "cafe tres bien"
    assert normalize("Привет мир 你好") == ""


def test_empty_and_long_inputs():
    assert normalize("") == ""
    assert normalize("   \n\t ") == ""
    assert normalize("a" * 10_000) == "aa"
    long_text = "word " * 2_000
    assert normalize(long_text).split() == ["word"] * 2_000


def test_version_is_a_string():
    assert isinstance(NORMALIZER_VERSION, str) and NORMALIZER_VERSION
