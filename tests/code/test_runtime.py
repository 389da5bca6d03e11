"""The model runtime on the committed ONNX model: metadata, thresholds, batches, explanations, and every
way a model file can be unusable (each refused at load time with a readable reason)."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from serving import runtime
from serving.normalizer import NORMALIZER_VERSION, normalize
from serving.runtime import (
    APP_ROOT,
    ModelLoadError,
    SentimentModel,
    configured_model_path,
    load_configured_model,
)
from tests.app_fixtures import model_path

ADVERSARIAL = [
    "😂😂😂",
    "日本語のツイート",
    "!!!???",
    "   padded   ",
    "a" * 5000,
    "http://t.co/x @user #tag",
    "\u0000\u200b\ufeff text with invisible characters",
    "Ａｉｒ Ｐａｒａｄｉｓ ｒｏｃｋｓ",
]


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load(model_path())


def test_identity_comes_from_the_model_metadata(model):
    raw = ort.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"]).get_modelmeta()
    metadata = raw.custom_metadata_map
    assert model.version == json.loads(metadata["model_version"])
    assert model.threshold == pytest.approx(float(json.loads(metadata["threshold"])))
    assert list(model.labels) == json.loads(metadata["labels"])
    assert str(model.metadata["normalizer_version"]) == NORMALIZER_VERSION
    assert model.session.get_providers() == ["CPUExecutionProvider"]


def test_labels_follow_the_threshold(model):
    texts = ["I hate this delay", "love the crew", "lost bag", "ok", "best flight ever!"]
    for prediction in model.predict(texts):
        expected = model.labels[0] if prediction.negative_probability >= model.threshold else model.labels[1]
        assert prediction.label == expected
        assert prediction.explanation is None


def test_scores_agree_with_the_graph_run_directly(model):
    texts = ["Lost my luggage AGAIN @airline", "Thanks for the upgrade :)"]
    session = ort.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"])
    (direct,) = session.run(
        ["negative_probability"], {"text": np.array([normalize(t) for t in texts], dtype=object)}
    )
    scored = [p.negative_probability for p in model.predict(texts)]
    assert scored == pytest.approx(direct.tolist(), abs=1e-7)


def test_a_batch_equals_single_scoring_in_order(model):
    texts = [f"{word} flight number {i}" for i, word in enumerate(["awful", "great", "late", "smooth"] * 5)]
    batch = model.predict(texts, explain=True)
    for text, scored in zip(texts, batch, strict=True):
        (single,) = model.predict([text], explain=True)
        assert scored.negative_probability == pytest.approx(single.negative_probability, abs=1e-6)
        assert scored.label == single.label
        assert scored.explanation == single.explanation


@pytest.mark.parametrize("parallel", [True, False], ids=["chunks-in-parallel", "single-cpu"])
def test_a_batch_of_many_chunks_scores_like_single_texts_in_order(model, monkeypatch, parallel):
    """Batches run as length-sorted chunks (in parallel when there are CPUs to spare): each text still
    gets its own score and explanation, in the caller's order."""
    if not parallel:
        monkeypatch.setattr(runtime, "_chunk_pool", lambda: None)
    words = ["awful", "great", "late", "smooth", "rude", "thanks"]
    texts = [" ".join(words[: 1 + i % 6]) + " flight" * (i % 17) for i in range(3 * runtime.CHUNK_TEXTS + 7)]
    texts[5], texts[77] = "", "😂" * 300
    batch = model.predict(texts, explain=True, top_k=2)
    plain = model.predict(texts)
    for text, scored, unexplained in zip(texts, batch, plain, strict=True):
        (single,) = model.predict([text], explain=True, top_k=2)
        assert scored.negative_probability == pytest.approx(single.negative_probability, abs=1e-6)
        assert unexplained.negative_probability == pytest.approx(single.negative_probability, abs=1e-6)
        assert (scored.label, scored.explanation) == (single.label, single.explanation)


def test_top_words_keeps_the_largest_per_row_and_ignores_rows_outside_the_batch():
    from serving.explanation import top_words

    rows = np.array([1, 0, 1, 1, 0, 5, -1])
    terms = np.array(["a", "b", "c", "d", "e", "x", "y"], dtype=object)
    weights = np.array([0.1, -0.5, -0.3, 0.3, 0.2, 9.0, 9.0])
    assert top_words(["b e", "c d a", "zz"], rows, terms, weights, 2) == [
        [{"term": "b", "weight": -0.5}, {"term": "e", "weight": 0.2}],
        [{"term": "c", "weight": -0.3}, {"term": "d", "weight": 0.3}],
        [],
    ]
    assert top_words(["a", "b"], rows[:0], terms[:0], weights[:0], 5) == [[], []]


def test_explanations_are_the_top_terms_by_absolute_weight(model):
    text = "worst airline ever, they lost my bag but the crew was lovely and kind"
    (prediction,) = model.predict([text], explain=True, top_k=3)
    terms = prediction.explanation
    assert 1 <= len(terms) <= 3
    assert [abs(t["weight"]) for t in terms] == sorted((abs(t["weight"]) for t in terms), reverse=True)
    (everything,) = model.predict([text], explain=True, top_k=1000)
    assert terms == everything.explanation[:3]
    # Terms are the words of the normalized text, each once.
    words = [t["term"] for t in everything.explanation]
    assert len(words) == len(set(words)) and set(words) == set(normalize(text).split())
    # Weights are contributions to the positive logit: clear words push their own way.
    (negative,) = model.predict(["worst awful terrible airline"], explain=True, top_k=1)
    (positive,) = model.predict(["thank you, lovely amazing crew"], explain=True, top_k=1)
    assert negative.explanation[0]["weight"] < 0 < positive.explanation[0]["weight"]


def test_adversarial_texts_score_to_valid_probabilities(model):
    predictions = model.predict(ADVERSARIAL, explain=True)
    assert len(predictions) == len(ADVERSARIAL)
    for prediction in predictions:
        assert math.isfinite(prediction.negative_probability)
        assert 0.0 <= prediction.negative_probability <= 1.0
        assert isinstance(prediction.explanation, list)


def test_texts_that_normalize_to_nothing_get_the_prior(model):
    nothing = model.predict(["日本語", "。。。"])
    assert nothing[0].negative_probability == pytest.approx(nothing[1].negative_probability)
    assert model.predict(["日本語"], explain=True)[0].explanation == []


def test_the_model_path_setting_is_relative_to_the_app_folder():
    assert configured_model_path({}) == APP_ROOT / "model" / "sentiment.onnx"
    assert configured_model_path({"MODEL_PATH": "elsewhere/m.onnx"}) == APP_ROOT / "elsewhere" / "m.onnx"
    assert configured_model_path({"MODEL_PATH": "/opt/m.onnx"}).as_posix() == "/opt/m.onnx"


def test_loading_the_configured_model_never_raises(tmp_path):
    state = load_configured_model({"MODEL_PATH": str(model_path())})
    assert state.model is not None and state.reason is None
    missing = load_configured_model({"MODEL_PATH": str(tmp_path / "nope.onnx")})
    assert missing.model is None and "not found" in missing.reason


def _with_metadata(tmp_path, **changes):
    """The committed model with some metadata entries replaced (None removes the entry)."""
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(model_path()))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    target = tmp_path / "changed.onnx"
    onnx.save(proto, str(target))
    return target


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"threshold": None}, "lacks threshold"),
        ({"threshold": "1.5"}, "threshold"),
        ({"threshold": "not json"}, "not a JSON document"),
        ({"labels": json.dumps(["only-one"])}, "labels"),
        ({"model_version": json.dumps("")}, "model_version"),
        ({"normalizer_version": json.dumps("0")}, "normalizer version"),
    ],
    ids=[
        "no-threshold",
        "threshold-out-of-range",
        "threshold-not-json",
        "one-label",
        "empty-version",
        "other-normalizer",
    ],
)
def test_bad_metadata_is_refused_with_a_reason(tmp_path, changes, reason):
    with pytest.raises(ModelLoadError, match=reason):
        SentimentModel.load(_with_metadata(tmp_path, **changes))


def test_unreadable_files_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        SentimentModel.load(tmp_path / "absent.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ModelLoadError, match="cannot be read"):
        SentimentModel.load(garbage)
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(ModelLoadError, match="not found"):
        SentimentModel.load(tmp_path / "folder.onnx")


def _graph(tmp_path, inputs, outputs, nodes):
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)]
    )
    target = tmp_path / "graph.onnx"
    onnx.save(model, str(target))
    return target


def test_a_graph_with_the_wrong_interface_is_refused(tmp_path):
    from onnx import TensorProto, helper

    float_input = _graph(
        tmp_path,
        [helper.make_tensor_value_info("text", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("negative_probability", TensorProto.FLOAT, ["N"])],
        [helper.make_node("Identity", ["text"], ["negative_probability"])],
    )
    with pytest.raises(ModelLoadError, match="one string tensor input"):
        SentimentModel.load(float_input)
    no_terms = _graph(
        tmp_path,
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["N"])],
        [helper.make_node("Identity", ["text"], ["same"])],
    )
    with pytest.raises(ModelLoadError, match="lacks the outputs negative_probability"):
        SentimentModel.load(no_terms)


def test_a_model_without_the_explain_input_still_explains(model, tmp_path):
    """Models exported before the optional ``explain`` input compute the explanation on every run: the
    runtime must not feed it, and explains them the same way."""
    graph = onnx.load(str(model_path()))
    (branch,) = [n for n in graph.graph.node if n.op_type == "If"]
    then_branch = next(a.g for a in branch.attribute if a.name == "then_branch")
    nodes = [n for n in graph.graph.node if n is not branch]
    nodes += list(then_branch.node)
    nodes += [
        helper.make_node("Identity", [inner.name], [outer], name=f"unconditional_{outer}")
        for inner, outer in zip(then_branch.output, branch.output, strict=True)
    ]
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    kept = [i for i in graph.graph.input if i.name != "explain"]
    del graph.graph.input[:]
    graph.graph.input.extend(kept)
    kept = [i for i in graph.graph.initializer if i.name != "explain"] + list(then_branch.initializer)
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept)
    path = tmp_path / "always_explains.onnx"
    onnx.save(graph, str(path))
    older = SentimentModel.load(path)
    assert not older.session.get_overridable_initializers()
    texts = ["Lost my luggage AGAIN @airline", "Thanks for the upgrade :)", "", "late late late"]
    for explain in (False, True):
        mine = [(p.label, p.negative_probability, p.explanation) for p in older.predict(texts, explain)]
        assert mine == [
            (p.label, p.negative_probability, p.explanation) for p in model.predict(texts, explain)
        ]
    assert all(p.explanation for p in older.predict(texts[:2], explain=True))


def test_a_model_that_declares_no_explanation_outputs_loads_and_scores(tmp_path, model):
    """``explanation_outputs: []`` in the metadata: the graph may lack the term outputs; it still scores
    the same, and says it cannot explain."""
    proto = onnx.load(str(model_path()))
    kept = [
        output for output in proto.graph.output if output.name not in ("term_row", "term_text", "term_weight")
    ]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    props = {p.key: p.value for p in proto.metadata_props}
    helper.set_model_props(proto, props | {"explanation_outputs": "[]"})
    target = tmp_path / "no_terms.onnx"
    onnx.save(proto, str(target))
    lean = SentimentModel.load(target)
    assert lean.explains is False and model.explains is True
    texts = ["not bad at all", "lost my bag again"]
    assert [p.explanation for p in lean.predict(texts, explain=True)] == [None, None]
    assert [p.negative_probability for p in lean.predict(texts)] == [
        p.negative_probability for p in model.predict(texts)
    ]
    helper.set_model_props(proto, props)  # without the declaration, the missing outputs are refused
    onnx.save(proto, str(target))
    with pytest.raises(ModelLoadError, match="lacks the outputs term_row"):
        SentimentModel.load(target)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40_000), max_size=300))
def test_chunks_respect_the_text_and_character_budgets(lengths):
    chunks = runtime.chunk_rows(lengths)
    assert sorted(row for chunk in chunks for row in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        assert len(chunk) <= runtime.CHUNK_TEXTS
        longest = max(lengths[row] for row in chunk)
        assert len(chunk) == 1 or len(chunk) * longest <= runtime.CHUNK_CHARS


def test_a_passed_deadline_stops_scoring(model):
    import time

    with pytest.raises(runtime.OverBudget):
        model.predict(["late again"] * 300, deadline=time.monotonic() - 1)
    with pytest.raises(runtime.OverBudget):
        model.predict(["late again"], explain=True, deadline=time.monotonic() - 1)
    assert len(model.predict(["late again"] * 300, deadline=time.monotonic() + 60)) == 300


def test_long_texts_score_the_same_in_character_budget_chunks(model, monkeypatch):
    """Texts long enough to be chunked alone get the probabilities they get one at a time."""
    texts = ["delayed " * (200 * (i % 7) + 1) + "awful" for i in range(40)]
    together = [p.negative_probability for p in model.predict(texts)]
    alone = [model.predict([text])[0].negative_probability for text in texts]
    assert together == pytest.approx(alone, abs=1e-6)


# --- topics and drift signals -------------------------------------------------------------------------


def test_every_prediction_carries_its_topics_in_input_order_even_in_chunked_batches(model):
    from serving.topics import default_matcher

    texts = [f"{word} number {i}" for i, word in enumerate(["lost luggage", "hello", "on time", "..."] * 60)]
    predictions = model.predict(texts)  # 240 texts: several chunks scored in parallel
    assert [p.topics for p in predictions] == [tuple(default_matcher().match(normalize(t))) for t in texts]
    assert predictions[0].topics == ("baggage",) and predictions[1].topics == ()
    assert [p.empty for p in predictions[:4]] == [False, False, False, False]
    assert model.predict(["..."])[0].empty and model.predict(["..."])[0].topics == ()
    assert all(p.topics == () for p in model.predict(texts[:5], match_topics=False))
    explained = model.predict(["lost my bag"], explain=model.explains)
    assert explained[0].topics == ("baggage",)


def test_models_without_coverage_outputs_report_no_unknown_share(model, tmp_path):
    """The served model reports the share; the same graph without the outputs (and declaring none, as
    models exported before them) loads and reports none."""
    assert all(0 <= p.unknown_share <= 1 for p in model.predict(["hello there", "zzzz qqqq lost"]))
    proto = onnx.load(str(model_path()))
    kept = [output for output in proto.graph.output if output.name not in ("ngram_known", "ngram_total")]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    props = {p.key: p.value for p in proto.metadata_props}
    helper.set_model_props(proto, props | {"coverage_outputs": "[]"})
    target = tmp_path / "no_coverage.onnx"
    onnx.save(proto, str(target))
    older = SentimentModel.load(target)
    assert all(p.unknown_share is None for p in older.predict(["hello there", "zzzz qqqq"]))


def test_models_with_coverage_outputs_report_the_unknown_share(tmp_path):
    from tests.tweet_corpus import generated_corpus
    from training.export.artifact import export_model
    from training.modeling.text_model import TweetSentimentModel

    texts, labels = generated_corpus(300)
    fitted = TweetSentimentModel(word_ngram_range=(1, 2), norm="occurrence_l2").fit(texts, labels)
    path = tmp_path / "coverage.onnx"
    export_model(fitted, path, texts[:20], {})
    served = SentimentModel.load(path)
    known_text = normalize(texts[0])
    shares = [p.unknown_share for p in served.predict([texts[0], "zzzz qqqq wwww", "..."])]
    analyzer = fitted.vectorizers_[0].build_analyzer()
    grams = analyzer(known_text)
    expected = 1 - sum(g in fitted.vectorizers_[0].vocabulary_ for g in grams) / len(grams)
    assert shares[0] == pytest.approx(expected)
    assert shares[1] == 1.0 and shares[2] is None  # all unknown; nothing to count
    signals = served.scored_signals(served.predict([texts[0], "zzzz qqqq wwww", "..."]))
    assert signals["unknown_texts"] == 2 and signals["unknown_share"] == pytest.approx((expected + 1) / 2)
    assert signals["empty_after_normalization"] == 1


def test_a_stream_prior_moves_every_probability_by_the_same_odds_factor():
    plain = load_configured_model({"MODEL_ENCODER_PATH": "off"}).model
    adapted_state = load_configured_model({"MODEL_ENCODER_PATH": "off", "STREAM_NEGATIVE_PRIOR": "0.75"})
    adapted = adapted_state.model
    assert plain is not None and adapted is not None, adapted_state.reason
    texts = ["the flight was fine", "lost my bag", "ok", "best crew ever", "delayed again"]
    before = [p.negative_probability for p in plain.predict(texts)]
    after = adapted.predict(texts)
    # The model encodes a 50/50 prior (balanced class weights): odds multiply by 0.75 / 0.25 = 3.
    for p, q in zip(before, after, strict=True):
        assert q.negative_probability == pytest.approx(3 * p / (3 * p + 1 - p), rel=1e-6)
        assert q.label == (
            adapted.labels[0] if q.negative_probability >= adapted.threshold else adapted.labels[1]
        )
    assert sum(q.label == "negative" for q in after) >= sum(p >= plain.threshold for p in before)


@pytest.mark.parametrize("value", ["74", "1", "0", "-0.2", "abc", "nan"])
def test_an_invalid_stream_prior_keeps_the_app_from_serving_skewed_labels(value):
    state = load_configured_model({"MODEL_ENCODER_PATH": "off", "STREAM_NEGATIVE_PRIOR": value})
    assert state.model is None
    assert state.summary == "invalid STREAM_NEGATIVE_PRIOR"
    assert "STREAM_NEGATIVE_PRIOR" in (state.reason or "")
