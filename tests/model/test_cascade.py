"""The cascade as served: the committed n-gram model with the committed cascade file (model/encoder.onnx).

Which texts go to the encoder (the band, most uncertain first, at most the quota per request), what the
answer says about it, that its fused probability does not depend on the batch, that a cascade fitted with
another n-gram model is refused (the n-gram model then answers alone, under its own version), and the
fitting helpers' arithmetic."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest

from serving import cascade as cascade_module
from serving.cascade import CascadeLoadError, encoder_text
from serving.runtime import APP_ROOT, SentimentModel, load_configured_model
from tests.app_fixtures import model_path

CASCADE_PATH = APP_ROOT / cascade_module.DEFAULT_ENCODER_PATH
UNSURE = [
    "the flight was not terrible",
    "not bad at all, no worries",
    "thanks for nothing I guess",
    "well that was a flight",
    "the crew was not rude at all",
    "could have been worse",
    "great job losing my bag again",
    "it was ok",
]


@pytest.fixture(scope="module")
def ngram() -> SentimentModel:
    return SentimentModel.load(model_path())


@pytest.fixture(scope="module")
def cascaded() -> SentimentModel:
    if not CASCADE_PATH.is_file():
        pytest.fail(f"the cascade file {cascade_module.DEFAULT_ENCODER_PATH} is missing")
    model = SentimentModel.load(model_path())
    model.attach_cascade(CASCADE_PATH)
    return model


def _in_band(cascade, p: float) -> bool:
    low, high = cascade.band
    return low <= p <= high


def test_the_committed_pair_loads_by_default_and_its_version_covers_both(ngram):
    state = load_configured_model({})
    assert state.model is not None and state.cascade_reason is None, state.cascade_reason
    cascade = state.model.cascade
    assert cascade is not None
    assert cascade.ngram_version == ngram.version
    assert state.model.version == cascade.version != ngram.version
    assert state.model.ngram_version == ngram.version


def test_off_serves_the_ngram_model_alone_under_its_own_version(ngram):
    state = load_configured_model({cascade_module.ENCODER_PATH_SETTING: "off"})
    assert state.model is not None and state.model.cascade is None
    assert state.model.version == ngram.version
    assert "off" in (state.cascade_reason or "")
    answer = state.model.predict(UNSURE)
    assert {p.encoder for p in answer} == {cascade_module.OFF}


def test_a_missing_cascade_file_leaves_the_ngram_model_serving(tmp_path, ngram):
    state = load_configured_model({cascade_module.ENCODER_PATH_SETTING: str(tmp_path / "none.onnx")})
    assert state.model is not None and state.model.cascade is None
    assert "no cascade file" in (state.cascade_reason or "")


def test_a_cascade_fitted_with_another_ngram_model_is_refused(tmp_path, ngram):
    model = onnx.load(str(CASCADE_PATH))
    for prop in model.metadata_props:
        if prop.key == cascade_module.NGRAM_VERSION_KEY:
            prop.value = json.dumps("2020.01.01-00000000")
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    fresh = SentimentModel.load(model_path())
    with pytest.raises(CascadeLoadError, match=r"fitted with n-gram model 2020\.01\.01-00000000"):
        fresh.attach_cascade(other)
    assert fresh.cascade is None and fresh.version == ngram.version
    state = load_configured_model({cascade_module.ENCODER_PATH_SETTING: str(other)})
    assert state.model is not None and state.model.version == ngram.version
    assert "refit the cascade" in (state.cascade_reason or "")


def test_a_bare_encoder_is_not_a_cascade(tmp_path):
    model = onnx.load(str(CASCADE_PATH))
    graph = model.graph
    kept = [i for i in graph.input if i.name != cascade_module.NGRAM_INPUT]
    del graph.input[:]
    graph.input.extend(kept)
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(CascadeLoadError):
        SentimentModel.load(model_path()).attach_cascade(bare)


def test_only_uncertain_texts_are_reread_and_the_answer_says_so(ngram, cascaded):
    texts = [
        *UNSURE,
        "I love this airline, best crew ever, thank you!",
        "worst flight ever, lost my bag, hate it",
    ]
    alone = ngram.predict(texts)
    answers = cascaded.predict(texts)
    cascade = cascaded.cascade
    assert cascade is not None
    for before, after in zip(alone, answers, strict=True):
        if _in_band(cascade, before.negative_probability):
            assert after.encoder == cascade_module.USED
            assert after.ngram_negative_probability == pytest.approx(before.negative_probability, abs=1e-7)
        else:
            assert after.encoder == cascade_module.NOT_NEEDED
            assert after.ngram_negative_probability is None
            assert after.negative_probability == pytest.approx(before.negative_probability, abs=1e-7)
        assert after.label == (
            cascaded.labels[0] if after.negative_probability >= cascaded.threshold else cascaded.labels[1]
        )
    assert answers[-1].encoder == answers[-2].encoder == cascade_module.NOT_NEEDED
    assert any(a.encoder == cascade_module.USED for a in answers), "no probe text fell in the band"


def test_the_quota_bounds_the_encoder_work_of_a_request(ngram, cascaded):
    cascade = cascaded.cascade
    assert cascade is not None
    # Texts in the band: variants of the unsure ones.
    pool = [f"{text} {suffix}" for text in UNSURE for suffix in ("", "today", "on my trip", "lol", "again")]
    inside = [
        t for t, p in zip(pool, ngram.predict(pool), strict=True) if _in_band(cascade, p.negative_probability)
    ]
    assert len(inside) > cascade.quota, f"only {len(inside)} band texts for a quota of {cascade.quota}"
    answers = cascaded.predict(inside)
    used = [a for a in answers if a.encoder == cascade_module.USED]
    skipped = [a for a in answers if a.encoder == cascade_module.SKIPPED]
    assert len(used) == cascade.quota and len(skipped) == len(inside) - cascade.quota

    # The re-read ones are the closest to the threshold (in log-odds).
    def distance(p: float) -> float:
        return abs(math.log(p / (1 - p)) - math.log(cascaded.threshold / (1 - cascaded.threshold)))

    worst_used = max(distance(a.ngram_negative_probability) for a in used)
    best_skipped = min(distance(a.negative_probability) for a in skipped)
    assert worst_used <= best_skipped
    signals = cascaded.scored_signals(answers)
    assert (signals["encoder_texts"], signals["encoder_skipped"]) == (len(used), len(skipped))


def test_a_fused_probability_does_not_depend_on_the_batch(cascaded):
    together = cascaded.predict(UNSURE)
    for text, batched in zip(UNSURE, together, strict=True):
        alone = cascaded.predict([text])[0]
        assert alone.encoder == batched.encoder
        assert alone.negative_probability == pytest.approx(batched.negative_probability, abs=1e-5)


def test_hostile_texts_are_bounded_for_the_encoder(cascaded):
    cascade = cascaded.cascade
    assert cascade is not None
    hostile = ["a" * 5000, "😡" * 5000, "@user " * 800, "http://x.co/" + "a" * 4900, "no " * 1600]
    ids, mask, truncated = cascade.tokenizer.tokenize([encoder_text(t, cascade.max_chars) for t in hostile])
    assert ids.shape[1] <= cascade.tokenizer.max_tokens and mask.shape == ids.shape
    assert truncated.tolist() == [True, True, True, False, True]  # the link became "http"
    fused = cascade.rescore(hostile, [0.5] * len(hostile))
    assert all(0.0 <= p <= 1.0 for p in fused)


def test_encoder_text_hides_links_and_user_names_and_is_bounded():
    assert (
        encoder_text("@united lost my bag https://t.co/abc &amp; more", 200)
        == "@user lost my bag http & more"
    )
    assert len(encoder_text("word " * 5000, 100)) <= 100
    assert encoder_text("   ", 50) == ""


def test_the_cascade_metadata_describes_its_band_and_quota(cascaded):
    cascade = cascaded.cascade
    assert cascade is not None
    low, high = cascade.band
    assert 0.0 <= low < cascaded.threshold < high <= 1.0
    assert 1 <= cascade.quota <= 256
    assert cascade.metadata["threshold"] == pytest.approx(cascaded.threshold)


# ------------------------------------------------------------------------------------ fitting arithmetic


def test_the_band_holds_the_share_closest_to_the_threshold():
    from training.cascade import band_for_share, in_band

    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 10_000)
    for share in (0.1, 0.3, 0.5):
        band = band_for_share(p, 0.45, share)
        assert band[0] < 0.45 < band[1]
        assert in_band(p, band).mean() == pytest.approx(share, abs=0.002)
    assert band_for_share(p, 0.45, 1.0) == (0.0, 1.0)


def test_the_fusion_decision_point_is_moved_onto_the_threshold():
    from training.cascade import fit_fusion, logit

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 4_000)
    signal = np.where(labels == 0, 1.0, -1.0)
    p_ngram = 1 / (1 + np.exp(-(signal * 0.3 + rng.normal(0, 1, labels.size))))
    encoder_logit = signal * 1.5 + rng.normal(0, 1, labels.size)
    fusion = fit_fusion(p_ngram, encoder_logit, labels, (0.0, 1.0), 0.45)
    assert fusion.encoder > fusion.ngram > 0  # the better-informed logit weighs more
    fused = fusion.probability(p_ngram, encoder_logit)
    accuracy = np.mean((fused >= 0.45) == (labels == 0))
    assert accuracy > np.mean((p_ngram >= 0.45) == (labels == 0)) + 0.1
    assert np.all(np.isfinite(logit(np.array([0.0, 1.0]))))


@pytest.mark.slow
def test_the_cascade_reads_what_the_ngram_model_misreads_and_stays_invariant(ngram, cascaded):
    """Behavioural suites where the card shows the encoder helps must not regress below the n-gram model,
    and the invariances (links, user names, casing) hold for the cascade as for the n-gram model."""
    from training.behaviour import generate_suites, model_scorer, run_suites

    wanted = {
        "negated_positive",
        "intensified_positive",
        "intensified_negative",
        "urls",
        "mentions",
        "casing",
    }
    suites = [suite for suite in generate_suites() if suite.name in wanted]
    assert {suite.name for suite in suites} == wanted
    alone = run_suites(model_scorer(ngram), ngram.threshold, suites)["suites"]
    both = run_suites(model_scorer(cascaded), cascaded.threshold, suites)["suites"]
    rates = {name: (alone[name]["failure_rate"], both[name]["failure_rate"]) for name in wanted}
    print(rates)
    for name in ("negated_positive", "intensified_positive", "intensified_negative"):
        assert rates[name][1] <= rates[name][0], rates
    for name in ("urls", "mentions", "casing"):
        assert rates[name][1] <= 0.10, rates
