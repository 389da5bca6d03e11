"""The token-following ONNX graph: parity with scikit-learn, explanations, metadata, the export gate."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import joblib
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from serving.normalizer import normalize
from tests.tweet_corpus import generated_corpus
from training.cli import app
from training.export import ngram_graph, registry
from training.export.artifact import (
    ADVERSARIAL_TEXTS,
    ParityError,
    check_parity,
    export_model,
    open_session,
    to_onnx,
)
from training.export.families import NoExporterError, exporter_for, is_exportable
from training.modeling.text_model import TweetSentimentModel

CONFIGURATIONS = {
    "word": {"word_ngram_range": (1, 2)},
    "word_char": {"word_ngram_range": (1, 3), "char_ngram_range": (1, 4), "char_min_df": 1},
    "sublinear": {"word_ngram_range": (1, 2), "sublinear_tf": True},
    "nb": {"word_ngram_range": (1, 3), "nb_weighting": True, "class_weight": "balanced"},
    "everything": {
        "word_ngram_range": (2, 3),
        "char_ngram_range": (2, 5),
        "sublinear_tf": True,
        "nb_weighting": True,
    },
    "occurrence": {"word_ngram_range": (1, 3), "norm": "occurrence_l2"},
    "production_like": {
        "word_ngram_range": (1, 3),
        "char_ngram_range": (2, 5),
        "norm": "occurrence_l2",
        "nb_weighting": True,
        "class_weight": "balanced",
    },
}
EXTRA_TEXTS = ["late late late late", "good morning", "good", "morning", "a", "x y", "!", "? ! ?", ""]


@pytest.fixture(scope="module")
def corpus():
    return generated_corpus()


@pytest.fixture(scope="module", params=list(CONFIGURATIONS))
def fitted(request, corpus):
    texts, labels = corpus
    model = TweetSentimentModel(**CONFIGURATIONS[request.param]).fit([*texts, "good morning"], [*labels, 1])
    return model, to_onnx(model, {"training_data_fingerprint": "test"}).SerializeToString()


def session(data: bytes) -> ort.InferenceSession:
    return open_session(data)


def run(data: bytes, texts: list[str], explain: bool = True):
    feed = {"text": np.array(texts, dtype=object), "explain": np.array(explain)}
    return session(data).run(list(ngram_graph.OUTPUTS), feed)


def test_parity_on_generated_and_adversarial_texts(fitted, corpus):
    model, data = fitted
    texts, _ = corpus
    report = check_parity(model, data, texts + EXTRA_TEXTS)
    assert report["max_abs_difference"] <= 1e-5
    assert report["texts"] == len(texts) + len(EXTRA_TEXTS) + len(ADVERSARIAL_TEXTS)
    assert report["label_flips"] == 0


def test_one_batch_of_mixed_lengths_scores_like_single_texts(fitted, corpus):
    """Padding and neighbouring rows must never form an n-gram: batch and one-by-one runs agree."""
    model, data = fitted
    texts = [normalize(t) for t in [*EXTRA_TEXTS, *corpus[0][:20], *ADVERSARIAL_TEXTS]]
    scorer = session(data)
    batch = scorer.run(["negative_probability"], {"text": np.array(texts, dtype=object)})[0]
    alone = [scorer.run(["negative_probability"], {"text": np.array([t], dtype=object)})[0][0] for t in texts]
    np.testing.assert_allclose(batch, alone, atol=1e-7)
    np.testing.assert_allclose(batch, model.negative_probability(texts), atol=1e-6)


def test_empty_text_gives_the_intercept_only_probability(fitted):
    model, data = fitted
    assert normalize("東京 行き") == ""
    probability, rows, terms, weights = run(data, ["", normalize("東京 行き")])
    expected = 1 / (1 + np.exp(model.intercept_))
    np.testing.assert_allclose(probability, [expected, expected], atol=1e-7)
    assert model.negative_probability([""])[0] == pytest.approx(expected, abs=1e-12)
    assert len(rows) == len(terms) == len(weights) == 0


def test_explanation_outputs_equal_the_estimator_explain(fitted, corpus):
    model, data = fitted
    texts = [*corpus[0][:25], "good morning good", ""]
    _, rows, terms, weights = run(data, texts)
    expected = model.explain(texts, top_k=10_000)
    for row, explanation in enumerate(expected):
        mine = sorted(zip(terms[rows == row], weights[rows == row], strict=True))
        theirs = sorted(explanation)
        assert [t for t, _ in mine] == [t for t, _ in theirs]
        np.testing.assert_allclose([w for _, w in mine], [w for _, w in theirs], rtol=1e-5, atol=1e-7)
        assert sum(w for _, w in mine) + model.intercept_ == pytest.approx(
            model.decision_function([texts[row]])[0], abs=1e-5
        )


def test_explanation_work_is_skipped_unless_asked(fitted, corpus):
    """``explain`` defaults to false: same probabilities, empty explanation outputs, and the term strings
    are only gathered inside the ``If`` branch that runs when it is true."""
    _, data = fitted
    texts = [normalize(t) for t in [*corpus[0][:30], *EXTRA_TEXTS]]
    scorer = session(data)
    assert [i.name for i in scorer.get_inputs()] == ["text"]
    assert [i.name for i in scorer.get_overridable_initializers()] == ["explain"]
    plain = scorer.run(list(ngram_graph.OUTPUTS), {"text": np.array(texts, dtype=object)})
    asked_not = run(data, texts, explain=False)
    asked = run(data, texts, explain=True)
    for outputs in (plain, asked_not):
        np.testing.assert_array_equal(outputs[0], asked[0])
        assert [(o.dtype, o.shape) for o in outputs[1:]] == [
            (np.int64, (0,)),
            (np.object_, (0,)),
            (np.float32, (0,)),
        ]
    assert len(asked[1]) == len(asked[2]) == len(asked[3]) > len(texts)
    graph = onnx.load_from_string(data).graph
    (branch,) = [n for n in graph.node if n.op_type == "If"]
    assert list(branch.input) == ["explain"] and list(branch.output) == list(ngram_graph.OUTPUTS[1:])
    then_branch = next(a.g for a in branch.attribute if a.name == "then_branch")
    assert any(n.op_type == "StringConcat" for n in then_branch.node)
    assert not any(n.op_type == "StringConcat" for n in graph.node)
    texts_only = {name for node in graph.node if node.op_type != "If" for name in node.output}
    assert not texts_only & set(ngram_graph.OUTPUTS[1:])


def test_occurrence_norm_scores_without_grouping_ngrams(corpus):
    """Under "occurrence_l2" the scoring path has no sort, no NonZero and no scatter: per-text sums of
    looked-up values. Grouping the n-grams of a text only happens inside the explanation branch."""
    texts, labels = corpus
    fast = TweetSentimentModel(**CONFIGURATIONS["production_like"]).fit(texts, labels)
    classic = TweetSentimentModel(**CONFIGURATIONS["everything"]).fit(texts, labels)
    grouping = {"TopK", "NonZero", "ScatterElements", "Unique"}
    fast_graph, classic_graph = (to_onnx(m, {}).graph for m in (fast, classic))
    assert not {n.op_type for n in fast_graph.node} & grouping
    (branch,) = [n for n in fast_graph.node if n.op_type == "If"]
    then_branch = next(a.g for a in branch.attribute if a.name == "then_branch")
    assert {"TopK", "NonZero"} <= {n.op_type for n in then_branch.node}
    assert {"TopK", "ScatterElements"} <= {n.op_type for n in classic_graph.node}


def test_dense_and_hashed_lookups_agree(corpus, monkeypatch):
    """Short n-gram orders are looked up by position in dense tables, longer ones through a hash table:
    forcing either for every order gives the same scores and explanations."""
    texts, labels = corpus
    model = TweetSentimentModel(**CONFIGURATIONS["production_like"]).fit(texts, labels)
    probe = [normalize(t) for t in [*texts[:40], *EXTRA_TEXTS, *ADVERSARIAL_TEXTS]]
    results = []
    for dense_keys in (0, ngram_graph.DENSE_KEYS, 10**9):
        monkeypatch.setattr(ngram_graph, "DENSE_KEYS", dense_keys)
        graph = to_onnx(model, {})
        kinds = {n.op_type for n in graph.graph.node if n.op_type in ("Gather", "LabelEncoder")}
        results.append((kinds, run(graph.SerializeToString(), probe)))
    assert [kinds for kinds, _ in results] == [{"Gather", "LabelEncoder"}] * 3

    def explained(outputs):
        return sorted(zip(outputs[1].tolist(), outputs[2].tolist(), outputs[3].tolist(), strict=True))

    reference = results[0][1]
    for _, outputs in results[1:]:
        np.testing.assert_allclose(outputs[0], reference[0], atol=1e-6)
        mine, theirs = explained(outputs), explained(reference)
        assert [(row, term) for row, term, _ in mine] == [(row, term) for row, term, _ in theirs]
        np.testing.assert_allclose([w for *_, w in mine], [w for *_, w in theirs], atol=1e-6)


def test_no_dense_texts_by_vocabulary_tensor_anywhere(fitted, corpus):
    """Every intermediate tensor of a 60-text batch stays far below texts x vocabulary elements."""
    model, data = fitted
    graph = onnx.load_from_string(data)
    ops = {node.op_type for node in graph.graph.node}
    assert not ops & {"TfIdfVectorizer", "MatMul", "Gemm", "OneHot", "ScatterND"}
    outputs = {name for node in graph.graph.node for name in node.output}
    probe = copy.deepcopy(graph)
    probe.graph.output.extend(
        onnx.ValueInfoProto(name=name)
        for name in sorted(outputs - set(ngram_graph.OUTPUTS) - set(ngram_graph.COVERAGE))
    )
    texts = corpus[0][:60]
    results = session(probe.SerializeToString()).run(None, {"text": np.array(texts, dtype=object)})
    largest = max(np.asarray(r).size for r in results)
    assert largest < len(texts) * model.n_features_ / 10
    # Bounded by the batch's characters x n-gram orders x 2 looked-up values, whatever the vocabulary.
    assert largest <= len(texts) * max(len(t) for t in texts) * 2 * 4


def test_metadata_round_trips_through_onnxruntime(fitted):
    model, data = fitted
    meta = session(data).get_modelmeta().custom_metadata_map
    values = {key: json.loads(value) for key, value in meta.items()}
    assert values["labels"] == ["negative", "positive"]
    assert values["n_features"] == model.n_features_
    assert values["threshold"] == model.threshold
    assert values["training_data_fingerprint"] == "test"
    assert values["params"]["word_ngram_range"] == list(model.word_ngram_range)
    assert {"normalizer_version", "test_metrics", "created_at"} <= set(values)
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}-[0-9a-f]{8}", values["model_version"])


def test_model_version_follows_the_weights(corpus):
    texts, labels = corpus
    model = TweetSentimentModel(word_max_features=300).fit(texts, labels)
    when = {"created_at": "2026-11-23T10:00:00+00:00"}

    def version(m):
        props = {p.key: p.value for p in to_onnx(m, when).metadata_props}
        return json.loads(props["model_version"])

    changed = copy.deepcopy(model)
    changed.classifier_.coef_ *= 1.01
    assert version(model) == version(copy.deepcopy(model))
    assert version(model).startswith("2026.11.23-")
    assert version(changed) != version(model)


@pytest.fixture(scope="module")
def small_model(corpus):
    texts, labels = corpus
    return TweetSentimentModel(char_ngram_range=(2, 3)).fit(texts, labels)


def test_parity_gate_catches_a_corrupted_graph(small_model, corpus):
    corrupted = copy.deepcopy(small_model)
    corrupted.classifier_.coef_ *= 1.2
    with pytest.raises(ParityError, match="differ by"):
        check_parity(small_model, to_onnx(corrupted, {}).SerializeToString(), corpus[0][:50])


def test_export_refuses_to_write_when_parity_fails(small_model, corpus, tmp_path, monkeypatch):
    target = tmp_path / "model" / "sentiment.onnx"
    target.parent.mkdir()
    target.write_bytes(b"previous model")
    wrong = copy.deepcopy(small_model)
    wrong.classifier_.intercept_ += 0.01
    real_build = ngram_graph.build_graph
    monkeypatch.setitem(registry.EXPORTERS, TweetSentimentModel, lambda model: real_build(wrong))
    with pytest.raises(ParityError):
        export_model(small_model, target, corpus[0][:20], {})
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in target.parent.iterdir()] == ["sentiment.onnx"]


def test_export_writes_a_file_that_serves_alone(small_model, corpus, tmp_path):
    target = tmp_path / "sentiment.onnx"
    metadata = {"test_metrics": {"generated": {"accuracy": 1}}, "rows": np.int64(600), "c": np.float32(0.5)}
    report = export_model(small_model, target, corpus[0][:100], metadata)
    assert report["parity"]["max_abs_difference"] <= 1e-5
    assert report["bytes"] == target.stat().st_size
    meta = session(target.read_bytes()).get_modelmeta().custom_metadata_map
    assert json.loads(meta["model_version"]) == report["model_version"]
    assert json.loads(meta["test_metrics"]) == {"generated": {"accuracy": 1}}
    assert json.loads(meta["rows"]) == 600 and json.loads(meta["c"]) == 0.5


def test_export_command_reads_the_model_and_metadata_beside_it(small_model, corpus, tmp_path):
    model_file = tmp_path / "best.joblib"
    joblib.dump(small_model, model_file)
    (tmp_path / "best.metadata.json").write_text(json.dumps({"training_data_fingerprint": "abc"}))
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("\n".join(corpus[0][:30]))
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(
        app, ["export", "--model", str(model_file), "--out", str(out), "--parity-texts", str(texts_file)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["parity"]["texts"] == 30 + len(ADVERSARIAL_TEXTS)
    meta = session(out.read_bytes()).get_modelmeta().custom_metadata_map
    assert json.loads(meta["training_data_fingerprint"]) == "abc"
    missing = CliRunner().invoke(app, ["export", "--model", str(tmp_path / "nope.joblib"), "--out", str(out)])
    assert missing.exit_code != 0 and "does not exist" in missing.output


def test_vocabulary_keys_are_exact_and_orders_never_share_a_key(small_model):
    """Keys spell the units of a term in base (alphabet + 1) after a leading 1: distinct for distinct
    terms, and a key of order n lies in [radix**n, 2 * radix**n)."""
    for block in small_model.feature_blocks():
        keys = ngram_graph.term_keys(block)
        radix = len({unit for term in block.terms for unit in ngram_graph.term_units(block, term)}) + 1
        assert len(set(keys.tolist())) == len(block.terms)
        for term, key in zip(block.terms, keys.tolist(), strict=True):
            n = len(ngram_graph.term_units(block, term))
            assert radix**n <= key < 2 * radix**n


def test_ngrams_too_long_for_64_bit_keys_are_refused(small_model):
    (word, char) = small_model.feature_blocks()
    too_long = dataclasses.replace(char, ngram_range=(2, 20))
    with pytest.raises(ValueError, match="do not fit 64-bit keys"):
        ngram_graph.term_keys(too_long)
    assert len(ngram_graph.term_keys(word)) == len(word.terms)


# ----------------------------------------------------------------------------------- the exporter registry


def test_the_registry_gives_each_family_its_graph_builder_and_refuses_the_others(small_model):
    assert exporter_for(small_model) is ngram_graph.build_graph
    assert is_exportable(TweetSentimentModel) and is_exportable(small_model)
    assert not is_exportable(LogisticRegression())
    with pytest.raises(NoExporterError, match=r"LogisticRegression cannot be exported.*TweetSentimentModel"):
        to_onnx(LogisticRegression(), {})


def test_a_registered_family_exports_through_its_own_builder(small_model, monkeypatch):
    """A new family only registers a builder: ``to_onnx`` uses it and declares the outputs it built."""

    class ScoreOnly(TweetSentimentModel):
        pass

    def without_explanations(model):
        graph = ngram_graph.build_graph(model)
        outputs = [o for o in graph.graph.output if o.name == "negative_probability"]
        del graph.graph.output[:]
        graph.graph.output.extend(outputs)
        return graph

    monkeypatch.setitem(registry.EXPORTERS, ScoreOnly, without_explanations)
    model = copy.deepcopy(small_model)
    model.__class__ = ScoreOnly
    meta = session(to_onnx(model, {}).SerializeToString()).get_modelmeta().custom_metadata_map
    assert json.loads(meta["explanation_outputs"]) == []
    assert json.loads(meta["n_features"]) == small_model.n_features_


def test_export_command_refuses_a_model_without_a_graph_builder(tmp_path, corpus):
    _, labels = corpus
    model_file = tmp_path / "linear.joblib"
    joblib.dump(LogisticRegression().fit(np.arange(len(labels))[:, None], labels), model_file)
    result = CliRunner().invoke(
        app, ["export", "--model", str(model_file), "--out", str(tmp_path / "x.onnx")]
    )
    assert result.exit_code == 2
    assert "LogisticRegression, which has no ONNX graph builder" in result.output
    assert not (tmp_path / "x.onnx").exists()


def _sklearn_coverage(model, normalized: list[str]) -> tuple[list[int], list[int]]:
    """Per text: n-gram occurrences scikit-learn's analyzers produce, and those in the vocabulary."""
    known, total = [], []
    for text in normalized:
        grams = [(v, gram) for v in model.vectorizers_ for gram in v.build_analyzer()(text)]
        known.append(sum(gram in v.vocabulary_ for v, gram in grams))
        total.append(len(grams))
    return known, total


def test_ngram_coverage_outputs_equal_what_the_sklearn_vocabulary_says(fitted, corpus):
    model, data = fitted
    foreign = ["el vuelo se retraso tres horas", "der flug hatte verspatung", "zzzz qqqq"]
    normalized = [normalize(text) for text in [*corpus[0][:150], *EXTRA_TEXTS, *foreign]]
    known, total = session(data).run(list(ngram_graph.COVERAGE), {"text": np.array(normalized, dtype=object)})
    expected_known, expected_total = _sklearn_coverage(model, normalized)
    assert known.tolist() == expected_known
    assert total.tolist() == expected_total
    assert 0 < int(known[-1]) < int(total[-1]) or int(known[-1]) == 0  # unknown words are counted
    meta = session(data).get_modelmeta().custom_metadata_map
    assert json.loads(meta["coverage_outputs"]) == list(ngram_graph.COVERAGE)


def test_validation_histogram_bins_like_serving():
    from training.modeling.train import score_histogram

    values = [0.0, 0.05, 0.1, 0.3499, 0.5, 0.99, 1.0]
    assert score_histogram(values) == [2, 1, 0, 1, 0, 1, 0, 0, 0, 2]
    assert sum(score_histogram(np.random.default_rng(1).random(500))) == 500
